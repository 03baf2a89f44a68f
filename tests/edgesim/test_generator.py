"""The dataset generator: calibration to the public reference sample and the Azure trace, determinism, real traces and sites."""
from __future__ import annotations

import filecmp
import json
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import REFERENCE, ROOT, run_script

from edgesim.dataset import load_dataset
from edgesim.physics import EARTH_RADIUS_KM

# the command data1/README.md documents for the committed default dataset
DEFAULT_ARGS = ["--servers", "500", "--regions", "1", "--trap-fraction", "0.1", "--seed", "0"]
FILES = ["servers.csv", "model_instances.csv", "network_links.csv", "tasks.csv", "task_request_mapping.csv",
         "request_log.csv", "trap_config.json"]


def _haversine(lon1, lat1, lon2, lat2):
    lon1, lat1, lon2, lat2 = map(np.radians, (lon1, lat1, lon2, lat2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(a))


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "Server1_Trap"
    run_script("data1/generate.py", *DEFAULT_ARGS, "--out", str(out))
    return out


def test_committed_default_dataset_is_the_generator_output(generated):
    for name in FILES:
        assert filecmp.cmp(generated / name, ROOT / "data1" / "Server1_Trap" / name, shallow=False), name


def test_generated_statistics_match_spec_section_7(generated):
    s = pd.read_csv(generated / "servers.csv")
    m = pd.read_csv(generated / "model_instances.csv")
    links = pd.read_csv(generated / "network_links.csv")
    t = pd.read_csv(generated / "tasks.csv")
    req = pd.read_csv(generated / "request_log.csv")
    trap = set(json.loads((generated / "trap_config.json").read_text())["trap_server_ids"])

    assert len(s) == 500 and s.Longitude.between(6.08, 10.31).all() and s.Latitude.between(45.83, 47.74).all()
    assert s.ComputationCapacity.between(15, 59).all() and s.ComputationCapacity.max() == 59
    assert np.allclose(s.NormalizedCompute, s.ComputationCapacity / 59, atol=1e-6)
    assert len(trap) == 50 and s[s.ServerID.isin(trap)].ComputationCapacity.min() >= s[~s.ServerID.isin(trap)].ComputationCapacity.max()

    per_server = m.groupby("ServerID").size()
    assert per_server.between(2, 16).all() and 8.0 <= per_server.mean() <= 10.5
    hosts = m.groupby("ModelTypeName").ServerID.nunique() / 500
    assert hosts["ChatGPT"] == 1.0 and 0.48 <= hosts["GPT-4"] <= 0.64 and 0.08 <= hosts["GPT-4v"] <= 0.16
    assert dict(m.groupby("ModelTypeName").CostPerToken.unique().apply(list)) == {
        "ChatGPT": [0.0015], "GPT-4": [0.03], "GPT-4v": [0.06]}

    out_degree = links.groupby("SrcServerID").size()
    assert len(out_degree) == 500 and out_degree.between(1, 8).all() and 3.0 <= out_degree.mean() <= 4.3
    pairs = set(zip(links.SrcServerID, links.DstServerID))
    assert all((b, a) in pairs for a, b in pairs)  # symmetric
    touches_trap = links.SrcServerID.isin(trap) | links.DstServerID.isin(trap)
    assert (links[touches_trap].BaseLatencyMs == 2000).all() and (links[touches_trap].BandwidthMbps == 1).all()
    assert links[~touches_trap].BaseLatencyMs.between(0.26, 0.6).all()

    assert (t.Split == "train").sum() == 1000 and (t.Split == "test").sum() == 200
    assert t.TaskSize.between(1, 521).all()
    types = [json.loads(x) for x in t.RequiredModelTypes]
    assert all(len(x) == 5 and x[0] != "GPT-4v" for x in types)
    mix = pd.Series([y for x in types for y in x]).value_counts(normalize=True)
    assert abs(mix["ChatGPT"] - 0.51) < 0.04 and abs(mix["GPT-4"] - 0.25) < 0.04 and abs(mix["GPT-4v"] - 0.24) < 0.04
    nearest = _haversine(t.TaskLongitude.to_numpy()[:, None], t.TaskLatitude.to_numpy()[:, None],
                         s.Longitude.to_numpy()[None], s.Latitude.to_numpy()[None]).min(1)
    assert 4.0 <= np.median(nearest) <= 14.0
    assert abs(req.RequestLengthTokens.mean() / 1155 - 1) < 0.15 and abs(req.ResponseLengthTokens.mean() / 211 - 1) < 0.15
    assert abs(req.RequestLengthTokens.median() / 1020 - 1) < 0.15 and abs(req.ResponseLengthTokens.median() / 129 - 1) < 0.2

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a generated folder loads without any warning
        ds = load_dataset(generated.parent, "Server1_Trap")
    assert ds.n_servers == 500 and ds.tasks["test"].tokens.min() >= 2


def test_generator_is_deterministic_and_seed_sensitive(tmp_path):
    for name, seed in (("a", "7"), ("b", "7"), ("c", "8")):
        run_script("data1/generate.py", "--servers", "60", "--seed", seed, "--train-tasks", "30", "--test-tasks", "10",
                   "--out", str(tmp_path / name / "Det_Trap"))  # the folder name is the server-id prefix
    a, b, c = (tmp_path / n / "Det_Trap" for n in "abc")
    assert all(filecmp.cmp(a / f, b / f, shallow=False) for f in FILES)
    assert not filecmp.cmp(a / "servers.csv", c / "servers.csv", shallow=False)


def test_generator_refuses_to_overwrite_without_force(tmp_path):
    args = ["data1/generate.py", "--servers", "20", "--train-tasks", "5", "--test-tasks", "5", "--out", str(tmp_path / "x")]
    run_script(*args)
    proc = run_script(*args, check=False)
    assert proc.returncode != 0 and "--force" in proc.stderr
    run_script(*args, "--force")


def test_multi_region_folders_load_together(small_root):
    ds = load_dataset(small_root / "multi", ["Region1", "Region2"])
    assert ds.n_servers == 160 and set(ds.server_region.tolist()) == {0, 1}
    assert len(ds.tasks["train"]) == 120


@pytest.mark.skipif(not (REFERENCE / "traces").exists(), reason="../shared/reference is absent")
def test_token_trace_resamples_real_requests(tmp_path):
    trace = REFERENCE / "traces" / "AzureLLMInferenceTrace_code.csv"
    run_script("data1/generate.py", "--servers", "50", "--train-tasks", "200", "--test-tasks", "50",
               "--token-trace", str(trace), "--out", str(tmp_path / "T"))
    req = pd.read_csv(tmp_path / "T" / "request_log.csv")
    real = pd.read_csv(trace)
    pairs = set(zip(real.ContextTokens, real.GeneratedTokens))
    assert all(p in pairs for p in zip(req.RequestLengthTokens, req.ResponseLengthTokens))


def test_token_trace_with_unknown_columns_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    proc = run_script("data1/generate.py", "--servers", "20", "--token-trace", str(bad), "--out", str(tmp_path / "T"),
                      check=False)
    assert proc.returncode != 0 and "bad.csv" in proc.stderr and "ContextTokens" in proc.stderr


@pytest.mark.skipif(not (REFERENCE / "Server1_Trap").exists(), reason="../shared/reference is absent")
def test_sites_places_servers_at_real_coordinates(tmp_path):
    sites = REFERENCE / "Server1_Trap" / "servers.csv"
    run_script("data1/generate.py", "--servers", "100", "--sites", str(sites), "--train-tasks", "20", "--test-tasks",
               "5", "--out", str(tmp_path / "S"))
    got = pd.read_csv(tmp_path / "S" / "servers.csv")
    real = pd.read_csv(sites)
    coords = set(zip(real.Longitude.round(4), real.Latitude.round(4)))
    assert all(c in coords for c in zip(got.Longitude.round(4), got.Latitude.round(4)))
