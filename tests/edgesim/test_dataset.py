"""Loading per docs/dataset.md: the reference sample, LFS pointers, tokens, and every bad-input case."""
from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest
from tiny import INSTANCES, LINKS, MAPPING, REQUESTS, SERVERS, TASKS, write_tiny

from edgesim.dataset import DatasetError, cost_multiplier, load_dataset

LFS_POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n"


def test_reference_sample_loads_with_one_warning_per_lfs_pointer(reference_root):
    with pytest.warns(UserWarning) as caught:
        ds = load_dataset(reference_root, "Server1_Trap")
    lfs = [str(w.message) for w in caught if "Git LFS pointer" in str(w.message)]
    assert len(lfs) == 2 and any("request_log.csv" in m for m in lfs) and any("session_stats.csv" in m for m in lfs)
    assert ds.n_servers == 500 and len(ds.instance_ids) == 4540 and len(ds.link_src) == 1780
    assert len(ds.tasks["train"]) == 1000 and len(ds.tasks["test"]) == 200
    assert ds.type_names == ("ChatGPT", "GPT-4", "GPT-4v") and int(ds.is_trap.sum()) == 50
    assert ds.server_ids == sorted(ds.server_ids)
    # request_log is a pointer, so tokens fall back to int(0.6*size) + int(0.4*size) on every step
    t = ds.tasks["test"]
    assert (t.tokens[:, 0] == (0.6 * t.size).astype(int) + (0.4 * t.size).astype(int)).all()
    assert math.isclose(ds.mean_link_latency, 393.5450484100616, rel_tol=1e-12)


def test_reference_cost_multiplier_formula(reference_ds):
    i = reference_ds.server_ids.index("Server1_166")  # lon 7.9514, lat 47.2455, nc 1.0, a trap? no
    nc, lon, lat = 1.0, 7.9514, 47.2455
    expect = min(max((3.5 - 4 * (nc - 0.25)) * (0.8 + 0.4 * (((1000 * lon + 100 * lat) % 100) / 100)), 0.3), 3.5)
    if reference_ds.is_trap[i]:
        expect = 1.2
    assert reference_ds.cost_mult[i] == pytest.approx(expect)
    traps = reference_ds.cost_mult[reference_ds.is_trap]
    assert np.allclose(traps, 1.2)


def test_tiny_region_semantics(tmp_path):
    write_tiny(tmp_path / "Tiny")
    ds = load_dataset(tmp_path, "Tiny")
    assert ds.server_ids == ["T_a", "T_b", "T_c", "T_d"]
    assert ds.fallback_server.tolist() == [2, 1]  # first instance of each type in the file: i1 on T_c, i5 on T_b
    assert ds.instance_ids[ds.instance_of[0, 0]] == "i2"  # first ChatGPT instance on T_a in file order
    assert (ds.instance_of[1] >= 0).tolist() == [False, True, False, True]
    # links apply both ways: the written b->c and c->d gain reverse rows, a<->b stays as written
    pairs = set(zip(ds.link_src.tolist(), ds.link_dst.tolist()))
    assert pairs == {(0, 1), (1, 0), (1, 2), (2, 1), (2, 3), (3, 2)}
    assert ds.mean_link_latency == pytest.approx((0.4 + 0.4 + 0.5 + 2000) / 4)
    assert ds.cost_mult[3] == 1.2 and ds.is_trap.tolist() == [False, False, False, True]
    t = ds.tasks["test"]
    assert t.tokens[0].tolist() == [1200, 3500, 100]  # mapped requests, then the TaskSize fallback
    assert len(ds.tasks["train"]) == 2  # the 1-step task t3 is skipped
    assert ds.fingerprint == load_dataset(tmp_path, "Tiny").fingerprint


def test_lfs_pointer_request_log_falls_back_with_a_warning(tmp_path):
    write_tiny(tmp_path / "Tiny", **{"request_log.csv": LFS_POINTER})
    with pytest.warns(UserWarning, match=r"request_log.csv is a Git LFS pointer"):
        ds = load_dataset(tmp_path, "Tiny")
    assert ds.tasks["test"].tokens[0].tolist() == [100, 100, 100]


def _replace(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


BAD = [
    ("servers.csv", _replace(SERVERS, "8.10,47.05", "abc,47.05"), r"servers.csv: line 3, field 'Longitude'.*'abc'"),
    ("servers.csv", _replace(SERVERS, "47.05", "inf"), r"servers.csv: line 3, field 'Latitude'.*finite"),
    ("servers.csv", _replace(SERVERS, ",0.5,20", ",-0.5,20"), r"line 3, field 'NormalizedCompute'.*>= 1e-6"),
    ("servers.csv", _replace(SERVERS, "T_b,", "T_a,"), r"servers.csv: line 3, field 'ServerID': duplicate id 'T_a'"),
    ("servers.csv", SERVERS.replace("Latitude", "Lat"), r"servers.csv: missing column\(s\) \['Latitude'\]"),
    ("model_instances.csv", _replace(INSTANCES, "i3,T_b", "i3,T_zz"), r"model_instances.csv: line 4, field 'ServerID': unknown server 'T_zz'"),
    ("model_instances.csv", _replace(INSTANCES, "T_d,ChatGPT,0.0015", "T_d,ChatGPT,-1"), r"line 5, field 'CostPerToken'.*>= 0"),
    ("model_instances.csv", _replace(INSTANCES, "i7,", "i1,"), r"line 8, field 'ModelInstanceID': duplicate id 'i1'"),
    ("network_links.csv", _replace(LINKS, "T_b,T_c", "T_b,T_q"), r"network_links.csv: line 4, field 'DstServerID': unknown server 'T_q'"),
    ("network_links.csv", _replace(LINKS, "0.5,50", "nan,50"), r"network_links.csv: line 4, field 'BaseLatencyMs'"),
    ("network_links.csv", LINKS + "T_a,T_b,0.3,50\n", r"network_links.csv: line 6, field 'SrcServerID/DstServerID': duplicate link \('T_a', 'T_b'\) \(first on line 2\)"),
    ("tasks.csv", _replace(TASKS, '"[""GPT-4"", ""ChatGPT""]"', '"[GPT-4"'), r"tasks.csv: line 3, field 'RequiredModelTypes': expected a JSON list"),
    ("tasks.csv", _replace(TASKS, '""GPT-4"", ""ChatGPT""', '""GPT-5"", ""ChatGPT""'), r"line 2, field 'RequiredModelTypes': model type 'GPT-5' has no instance"),
    ("tasks.csv", _replace(TASKS, ",300,", ",-3,"), r"tasks.csv: line 3, field 'TaskSize'.*>= 0.*'-3'"),
    ("tasks.csv", _replace(TASKS, "t1,", "t0,"), r"tasks.csv: line 3, field 'TaskID': duplicate id 't0'"),
    ("tasks.csv", TASKS.replace(",test,", ",train,"), r"split 'test' is empty"),
    ("tasks.csv", _replace(TASKS, ",test,", ",validation,"), r"tasks.csv: line 2, field 'Split': expected 'train' or 'test'"),
    ("tasks.csv", _replace(TASKS, "8.02,47.01", "8.02,95"), r"tasks.csv: line 2, field 'TaskLatitude'.*<= 90"),
    ("trap_config.json", '{"trap_server_ids": ["T_x"]}', r"trap_config.json: field 'trap_server_ids': unknown server 'T_x'"),
    ("trap_config.json", "not json", r"trap_config.json: not valid JSON"),
    ("request_log.csv", "RequestID,RequestLengthTokens,ResponseLengthTokens\nr1,ten,2\n", r"request_log.csv: line 2, field 'RequestLengthTokens'"),
    ("servers.csv", None, r"servers.csv: file not found"),
    # found by an adversarial probe: each used to raise a traceback or load nonsense silently
    ("tasks.csv", _replace(TASKS, ",300,", ",1e20,"), r"line 3, field 'TaskSize': .*<= 1e9, got '1e20'"),
    ("servers.csv", _replace(SERVERS, ",0.5,20", ",1e-300,20"), r"line 3, field 'NormalizedCompute': .*>= 1e-6"),
    ("network_links.csv", _replace(LINKS, "0.5,50", "0.5,0"), r"line 4, field 'BandwidthMbps': .*> 0"),
    ("model_instances.csv", _replace(INSTANCES, "0.03", "1e308"), r"line 6, field 'CostPerToken': .*<= 1e6"),
    ("request_log.csv", _replace(REQUESTS, "3000", "99999999999999999999"),
     r"line 3, field 'RequestLengthTokens': .*<= 1e9"),
    ("request_log.csv", REQUESTS + "r1,5,5\n",
     r"request_log.csv: line 4, field 'RequestID': duplicate id 'r1' \(first on line 2\)"),
    ("task_request_mapping.csv", MAPPING + "t0,1,r1,GPT-4\n",
     r"mapping.csv: line 4, field 'TaskID/WorkflowStepIndex': duplicate step \('t0', 1\)"),
    ("task_request_mapping.csv", MAPPING + "t0,3,r1,ChatGPT\n",
     r"line 4, field 'WorkflowStepIndex': task 't0' has 3 steps"),
    ("task_request_mapping.csv", MAPPING + "t9,0,r1,ChatGPT\n", r"line 4, field 'TaskID': unknown task 't9'"),
    ("task_request_mapping.csv", _replace(MAPPING, "r2,GPT-4", "r2,ChatGPT"),
     r"line 3, field 'RequiredModelType': tasks.csv has 'GPT-4' at step 1 of task 't0', got 'ChatGPT'"),
    ("task_request_mapping.csv", MAPPING + "t1,0,r9,GPT-4\n",
     r"line 4, field 'MappedRequestID': unknown request 'r9' \(not in request_log.csv\)"),
    ("trap_config.json", '{"trap_server_ids": [["T_d"]]}', r"field 'trap_server_ids': expected ServerID strings, got \[\"T_d\"\]"),
    ("trap_config.json", '{"trap_server_ids": ["T_d", "T_d"]}', r"field 'trap_server_ids': duplicate server 'T_d'"),
    ("trap_config.json", '{"trap_server_ids": ["T_d"], "trap_cost_multiplier": true}',
     r"field 'trap_cost_multiplier': expected a number >= 0 and <= 1e6, got true"),
    ("trap_config.json", '{"trap_server_ids": ["T_d"], "trap_cost_multiplyer": 2}',
     r"unknown key 'trap_cost_multiplyer'; known keys: trap_server_ids, trap_cost_multiplier, trap_bandwidth"),
]


@pytest.mark.parametrize("name,text,message", BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)])
def test_malformed_input_names_file_line_and_field(tmp_path, name, text, message):
    write_tiny(tmp_path / "Tiny", **{name: text})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DatasetError, match=message):
            load_dataset(tmp_path, "Tiny")


def test_model_type_names_are_stripped_in_every_file(tmp_path):
    instances = _replace(INSTANCES, "i5,T_b,GPT-4", "i5,T_b, GPT-4 ")
    tasks = _replace(TASKS, '[""GPT-4"", ""ChatGPT""]', '[""GPT-4 "", ""ChatGPT""]')
    write_tiny(tmp_path / "Tiny", **{"model_instances.csv": instances, "tasks.csv": tasks})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = load_dataset(tmp_path, "Tiny")
    assert ds.type_names == ("ChatGPT", "GPT-4") and ds.tasks["test"].types[1, :2].tolist() == [1, 0]


def test_a_link_from_a_server_to_itself_is_the_latency_of_staying(tmp_path):
    """The public reference sample has ten such rows; the simulator charges them between two steps on one server."""
    write_tiny(tmp_path / "Tiny", **{"network_links.csv": LINKS + "T_a,T_a,7,50\n"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = load_dataset(tmp_path, "Tiny")
    assert (0, 0) in set(zip(ds.link_src.tolist(), ds.link_dst.tolist()))
    assert ds.mean_link_latency == pytest.approx((0.4 + 0.4 + 0.5 + 2000 + 7) / 5)


@pytest.mark.parametrize("name,text,message", [
    ("request_log.csv", None, r"task_request_mapping.csv is given but request_log.csv is not"),
    ("task_request_mapping.csv", None, r"request_log.csv is given but task_request_mapping.csv is not"),
    ("request_log.csv", "", r"request_log.csv is empty; treated as absent"),
    ("task_request_mapping.csv", "TaskID,WorkflowStepIndex,MappedRequestID\n",
     r"has a header but no rows; treated as absent"),
])
def test_half_of_the_token_files_falls_back_with_one_warning(tmp_path, name, text, message):
    write_tiny(tmp_path / "Tiny", **{name: text})
    with pytest.warns(UserWarning) as caught:
        ds = load_dataset(tmp_path, "Tiny")
    token_notes = [str(w.message) for w in caught if "TaskSize" in str(w.message)]
    assert len(token_notes) == 1 and re.search(message, token_notes[0]), token_notes
    assert ds.tasks["test"].tokens[0].tolist() == [100, 100, 100]


def test_missing_region_and_cross_region_duplicate_ids(tmp_path):
    write_tiny(tmp_path / "A")
    write_tiny(tmp_path / "B")
    with pytest.raises(DatasetError, match="region folder not found"):
        load_dataset(tmp_path, ["A", "Nope"])
    with pytest.raises(DatasetError, match=r"ServerID 'T_a' also appears in region 'A'"):
        load_dataset(tmp_path, ["A", "B"])


def test_cost_multiplier_is_clipped():
    nc = np.array([1.0, 0.01, 0.5])
    m = cost_multiplier(nc, np.array([8.0, 8.0, 8.123]), np.array([47.0, 47.0, 46.5]))
    assert m.min() >= 0.3 and m.max() <= 3.5 and m[1] == 3.5
