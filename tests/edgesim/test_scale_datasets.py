"""The committed larger-scale datasets (data1/Server2_Trap, Server3_Trap) are the generator's output.

The commands are the ones data1/README.md documents; bench/scale.py reads these folders.
"""
from __future__ import annotations

import filecmp

import pytest
from conftest import ROOT, run_script

from edgesim.dataset import load_dataset

FILES = ["servers.csv", "model_instances.csv", "network_links.csv", "tasks.csv", "task_request_mapping.csv",
         "request_log.csv", "trap_config.json"]
# the commands data1/README.md documents for the committed scale datasets
SERVER2_ARGS = ["--servers", "1000", "--regions", "1", "--trap-fraction", "0.1", "--seed", "1"]


def test_committed_server2_is_the_generator_output(tmp_path):
    out = tmp_path / "Server2_Trap"  # the folder name sets the server-id prefix, so it must match
    run_script("data1/generate.py", *SERVER2_ARGS, "--out", str(out))
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    for name in FILES:
        assert filecmp.cmp(out / name, ROOT / "data1" / "Server2_Trap" / name, shallow=False), name


@pytest.mark.parametrize("region, servers", [("Server2_Trap", 1000), ("Server3_Trap", 2000)])
def test_committed_scale_datasets_load(region, servers):
    ds = load_dataset(ROOT / "data1", [region])
    assert ds.n_servers == servers
    assert int(ds.is_trap.sum()) == round(0.1 * servers)
