"""The serving performance model: its fit, its fidelity to the measured table, its arithmetic and its loader."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import REFERENCE, ROOT, run_script

from edgesim.serving_perf import (
    PERF_MODEL,
    PerfModelError,
    decode_ms,
    decode_span_ms,
    idle_batch_ms,
    load_perf_model,
    prefill_ms,
)

SHIPPED = {"data1/serving/splitwise_perf_model.csv": "serving/splitwise_perf_model.csv",
           "data1/serving/LICENSE-splitwise-sim": "serving/LICENSE-splitwise-sim",
           "data1/traces/AzureLLMInferenceTrace_conv.csv": "traces/AzureLLMInferenceTrace_conv.csv",
           "data1/traces/AzureLLMInferenceTrace_code.csv": "traces/AzureLLMInferenceTrace_code.csv"}


def test_fit_reproduces_the_committed_coefficients(tmp_path: Path) -> None:
    out = tmp_path / "perf_model.json"
    run_script("tools/fit_serving_model.py", "--out", str(out))
    assert out.read_bytes() == PERF_MODEL.read_bytes()


def test_fidelity_targets_hold_on_the_shipped_table(tmp_path: Path) -> None:
    out = tmp_path / "fidelity.json"
    run_script("bench/serving_fidelity.py", "--json", str(out))
    result = json.loads(out.read_text())
    overall = result["summary"]["overall"]
    for metric in ("ttft", "tpot", "e2e"):
        assert overall[metric]["n"] >= 170, metric  # the exclusions leave most of the 228 settings counted
        assert overall[metric]["median"] <= 0.05 and overall[metric]["p90"] <= 0.15, (metric, overall[metric])
    assert len(result["rows"]) == 228
    # the committed result is what the committed coefficients give
    assert result == json.loads((ROOT / "bench/results/serving_fidelity.json").read_text())


def test_fidelity_check_fails_for_a_wrong_model(tmp_path: Path) -> None:
    raw = json.loads(PERF_MODEL.read_text())
    for fit in raw["fits"]:
        fit["decode"]["d0"] *= 1.3  # every decode iteration 30% too slow at batch 1
    bad = tmp_path / "perf_model.json"
    bad.write_text(json.dumps(raw))
    out = tmp_path / "fidelity.json"
    run_script("bench/serving_fidelity.py", "--perf-model", str(bad), "--json", str(out))
    met = json.loads(out.read_text())["targets_met"]
    assert met["tpot"] is False and met["e2e"] is False and met["ttft"] is True


def test_the_serving_simulator_reproduces_the_closed_form_on_every_setting_that_fits_one_engine(tmp_path: Path) -> None:
    out = tmp_path / "fidelity.json"
    run_script("bench/serving_fidelity.py", "--through-simulator", "--json", str(out))
    result = json.loads(out.read_text())
    through = result["through_simulator"]
    classes = {(r["model"], r["hardware"], r["tensor_parallel"]) for r in through["runs"]}
    assert classes == {("llama2-70b", "a100-80gb", 2), ("llama2-70b", "h100-80gb-pcap", 4), ("llama2-70b", "h100-80gb", 8)}
    assert through["settings"] >= 40 and max(r["batch_size"] for r in through["runs"]) == 64
    assert all(v <= 1e-12 for v in through["max_relative_difference"].values()), through["max_relative_difference"]
    assert {k: v for k, v in result.items() if k != "through_simulator"} == json.loads(
        (ROOT / "bench/results/serving_fidelity.json").read_text())


def test_holdout_reports_only_the_held_out_part(tmp_path: Path) -> None:
    out = tmp_path / "holdout.json"
    run_script("bench/serving_fidelity.py", "--holdout", "llama2-70b:4", "--json", str(out))
    result = json.loads(out.read_text())
    assert {(r["model"], r["tensor_parallel"]) for r in result["rows"]} == {("llama2-70b", 4)}
    assert len(result["rows"]) == 57
    bad = run_script("bench/serving_fidelity.py", "--holdout", "bloom-176b:8", check=False)
    assert bad.returncode != 0 and bad.stderr.strip().startswith("error:") and len(bad.stderr.strip().splitlines()) == 1


def test_decode_span_is_the_sum_of_single_iterations() -> None:
    c = load_perf_model().get("llama2-70b", "a100-80gb", 4)
    for b, k0, k in [(1, 513, 127), (64, 64 * 513, 127), (7, 100, 1), (3, 30, 0)]:
        single = sum(decode_ms(c, b, k0 + i * b) for i in range(k))
        assert decode_span_ms(c, b, k0, k) == pytest.approx(single, rel=1e-12, abs=1e-9)
    batch, kv0, iters = torch.tensor([1.0, 8.0, 64.0]), torch.tensor([600.0, 4000.0, 40000.0]), torch.tensor([5.0, 50.0, 1.0])
    got = decode_span_ms(c, batch, kv0, iters)
    want = [decode_span_ms(c, float(b), float(k0), float(k)) for b, k0, k in zip(batch, kv0, iters)]
    assert torch.allclose(got, torch.tensor(want, dtype=got.dtype))


def test_idle_batch_is_one_prefill_then_decode_iterations() -> None:
    c = load_perf_model().get("bloom-176b", "h100-80gb", 8)
    ttft, tpot, e2e = idle_batch_ms(c, 512.0, 16.0, 128.0)
    assert ttft == prefill_ms(c, 16 * 512.0, 16 * 512.0**2, 16.0)
    assert e2e == pytest.approx(ttft + sum(decode_ms(c, 16.0, 16 * (512.0 + i)) for i in range(1, 128)), rel=1e-12)
    assert tpot == pytest.approx((e2e - ttft) / 127, rel=1e-12)
    # the floor: a tiny prompt costs the same as a slightly larger one, tensors give what floats give
    small = prefill_ms(c, torch.tensor([1.0, 8192.0]), torch.tensor([1.0, 8192.0**2]), torch.tensor([1.0, 1.0]))
    assert small[0].item() == pytest.approx(c.floor) and small[1].item() == pytest.approx(prefill_ms(c, 8192.0, 8192.0**2, 1.0))


def test_kv_capacity_by_hand() -> None:
    model = load_perf_model()
    kv_bytes = 80 * 2 * 8 * 128 * 2  # layers x (K, V) x KV heads x head dim x fp16 bytes = 327,680
    assert model.models["llama2-70b"].kv_bytes_per_token == kv_bytes
    # 4 GPUs x 80 GiB = 343,597,383,680 B, minus 135 GB of weights = 208,597,383,680 B
    assert model.kv_capacity_tokens("llama2-70b", "a100-80gb", 4) == 208_597_383_680 // 327_680 == 636_588
    assert model.models["bloom-176b"].kv_bytes_per_token == 70 * 2 * 112 * 128 * 2
    assert model.models["llama2-70b"].max_batch == 64


@pytest.mark.parametrize("edit, field", [
    (lambda raw: raw["fits"][3]["decode"].__setitem__("d1", "fast"), "fits[3].decode.d1"),
    (lambda raw: raw["fits"][0]["prefill"].pop("floor"), "fits[0].prefill"),
    (lambda raw: raw["models"]["llama2-70b"].__setitem__("layers", -80), "models.llama2-70b.layers"),
    (lambda raw: raw["fits"][1].__setitem__("hardware", "tpu"), "fits[1]"),
    (lambda raw: raw.__setitem__("format", 7), "format"),
])
def test_a_corrupt_coefficient_file_is_one_line(tmp_path: Path, edit, field: str) -> None:
    raw = json.loads(PERF_MODEL.read_text())
    edit(raw)
    bad = tmp_path / "perf_model.json"
    bad.write_text(json.dumps(raw))
    with pytest.raises(PerfModelError) as e:
        load_perf_model(bad)
    message = str(e.value)
    assert str(bad) in message and field in message and "\n" not in message
    proc = run_script("bench/serving_fidelity.py", "--perf-model", str(bad), check=False)
    assert proc.returncode != 0 and proc.stderr.strip() == f"error: {message}"


def test_a_truncated_coefficient_file_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "perf_model.json"
    bad.write_text(PERF_MODEL.read_text()[:500])
    with pytest.raises(PerfModelError, match=r"not valid JSON") as e:
        load_perf_model(bad)
    assert str(bad) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("shipped, reference", sorted(SHIPPED.items()))
def test_shipped_data_is_the_reference_copy(shipped: str, reference: str) -> None:
    assert (ROOT / shipped).stat().st_size > 1000
    if not (REFERENCE / reference).is_file():
        pytest.skip("../shared/reference is absent")
    assert (ROOT / shipped).read_bytes() == (REFERENCE / reference).read_bytes()
