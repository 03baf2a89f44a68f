"""A server's GPU class under the serving profile (docs/simulator.md §6): the dataset's GPUClass column where
servers.csv has one (data1/generate.py --gpu-classes writes it), else the tercile of NormalizedCompute."""
from __future__ import annotations

import filecmp
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import one_line_error, run_script

from edgesim.dataset import DatasetError, load_dataset
from edgesim.gpu_classes import GPU_CLASS_NAMES
from edgesim.registry import make_simulator
from edgesim.serving import GPU_CLASSES, Serving
from edgesim.serving_perf import load_perf_model

REGION = "Server7_Trap"
ARGS = ("--servers", "60", "--train-tasks", "8", "--test-tasks", "8", "--seed", "5")
FILES = ("servers.csv", "model_instances.csv", "network_links.csv", "tasks.csv", "task_request_mapping.csv",
         "request_log.csv", "trap_config.json")


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    """The same region generated with the column (`with`) and without it (`without`)."""
    out = {}
    for name, extra in (("with", ("--gpu-classes",)), ("without", ())):
        out[name] = tmp_path_factory.mktemp(name)
        run_script("data1/generate.py", *ARGS, *extra, "--out", str(out[name] / REGION))
    return out


def servers(root) -> pd.DataFrame:
    return pd.read_csv(root / REGION / "servers.csv", dtype={"GPUClass": str}, keep_default_na=False)


def engine_classes(root) -> tuple[np.ndarray, np.ndarray]:
    """Every server's GPU class index and KV capacity as the serving simulator built on the region runs them
    (sorted-ServerID order)."""
    sim = make_simulator(load_dataset(root, REGION), 1, "test", "random", 0, profile="serving",
                         params=Serving(worlds=1, max_in_flight=2, warmup=0))
    return sim.perf.gpu_class.numpy(), sim.perf.kv_capacity.numpy()


def column_classes(root) -> np.ndarray:
    """The GPUClass column as class indices, in sorted-ServerID order (the action space)."""
    df = servers(root).sort_values("ServerID")
    return df["GPUClass"].map({n: i for i, n in enumerate(GPU_CLASS_NAMES)}).to_numpy()


def test_the_generator_writes_each_servers_tercile_class(roots):
    df = servers(roots["with"])
    assert set(df["GPUClass"]) == set(GPU_CLASS_NAMES)
    nc = df["NormalizedCompute"].to_numpy()
    q1, q2 = np.quantile(nc, [1 / 3, 2 / 3])
    expected = np.array(GPU_CLASS_NAMES)[(nc > q1).astype(int) + (nc > q2).astype(int)]
    assert df["GPUClass"].tolist() == expected.tolist()
    # the column draws no random number: every other byte is that of the run without it
    assert servers(roots["with"]).drop(columns="GPUClass").equals(servers(roots["without"]))
    assert all(filecmp.cmp(roots["with"] / REGION / f, roots["without"] / REGION / f, shallow=False)
               for f in FILES if f != "servers.csv")


def test_the_engines_follow_the_column_and_without_it_the_derived_default(roots):
    given, _ = engine_classes(roots["with"])
    derived, _ = engine_classes(roots["without"])
    assert given.tolist() == column_classes(roots["with"]).tolist()
    assert derived.tolist() == given.tolist()  # one region: the generator's rule is the simulator's default
    assert load_dataset(roots["without"], REGION).gpu_class is None


def test_editing_one_servers_class_changes_that_engine_only(roots, tmp_path):
    shutil.copytree(roots["with"] / REGION, tmp_path / REGION)
    df = servers(tmp_path)
    row = int(np.flatnonzero(df["GPUClass"] == GPU_CLASS_NAMES[0])[0])  # an a100 TP2 server becomes an h100 TP8
    df.loc[row, "GPUClass"] = GPU_CLASS_NAMES[2]
    df.to_csv(tmp_path / REGION / "servers.csv", index=False)
    before, kv_before = engine_classes(roots["with"])
    after, kv_after = engine_classes(tmp_path)
    changed = np.flatnonzero(after != before)
    assert len(changed) == 1 and after[changed[0]] == 2
    model = load_perf_model()
    assert kv_before[changed[0]] == model.kv_capacity_tokens(*GPU_CLASSES[0])
    assert kv_after[changed[0]] == model.kv_capacity_tokens(*GPU_CLASSES[2])
    assert np.delete(kv_after, changed).tolist() == np.delete(kv_before, changed).tolist()


@pytest.mark.parametrize("bad", ["h100", "", "A100-80GB-TP2"])
def test_a_bad_class_is_a_one_line_error_naming_file_column_and_the_allowed_names(roots, tmp_path, bad):
    shutil.copytree(roots["with"] / REGION, tmp_path / REGION)
    df = servers(tmp_path)
    df.loc[3, "GPUClass"] = bad
    df.to_csv(tmp_path / REGION / "servers.csv", index=False)
    with pytest.raises(DatasetError) as e:
        load_dataset(tmp_path, REGION)
    message = str(e.value)
    assert "\n" not in message and f"{REGION}/servers.csv: line 5, field 'GPUClass'" in message, message
    assert all(name in message for name in GPU_CLASS_NAMES) and repr(bad) in message, message
    proc = run_script("Heuristics/inference.py", "--data", str(tmp_path), "--region", REGION, "--profile", "serving",
                      "--policy", "random", "--no-progress", "--out", str(tmp_path / "out"), check=False)
    one_line_error(proc, "servers.csv", "GPUClass", *GPU_CLASS_NAMES)


def test_regions_loaded_together_give_the_column_in_all_or_none(roots, tmp_path):
    shutil.copytree(roots["with"] / REGION, tmp_path / "A")
    shutil.copytree(roots["without"] / REGION, tmp_path / "B")
    for name in ("A", "B"):  # the two copies share server and task ids: give each region its own
        for f in FILES:
            path = tmp_path / name / f
            path.write_text(path.read_text().replace("Server7", name))
    with pytest.raises(DatasetError, match=r"B/servers.csv: missing column 'GPUClass' \(.*A/servers.csv has it"):
        load_dataset(tmp_path, ["A", "B"])
    ds = load_dataset(tmp_path, ["A"])
    assert ds.gpu_class is not None and len(ds.gpu_class) == 60
