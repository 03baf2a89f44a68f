"""total/sweep.py: expansion, idempotence, resume, failure isolation, refusal of a run folder
trained with other settings, stopping children on a signal, and the Ray backend."""
from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, run_script, sigint_enabled
from test_total import digests


def _sweep(tmp_path, **overrides):
    cfg = {"name": "t", "algorithms": ["PPO"], "seeds": [1], "regions": [["Server1_Trap"]],
           "budget": {"epochs": 5, "episodes": 16}, "evaluate": {"episodes": 10},
           "results": str(tmp_path / "results")} | overrides
    path = tmp_path / f"sweep_{len(list(tmp_path.glob('sweep_*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_local_sweep_is_idempotent_resumes_and_isolates_failures(tmp_path):
    cfg = _sweep(tmp_path, regions=[["Server1_Trap"], ["NoSuchRegion"]])
    first = run_script("total/sweep.py", "--config", str(cfg), "--workers", "2", check=False)
    assert first.returncode == 1  # one run failed ...
    assert "1 ok, 0 resumed, 0 skipped, 1 failed" in first.stdout  # ... and the other still finished
    failed_log = tmp_path / "results" / "PPO" / "NoSuchRegion_seed1" / "train.log"
    assert f"log: {failed_log}" in first.stdout and "region folder not found" in failed_log.read_text()
    run_dir = tmp_path / "results" / "PPO" / "Server1_Trap_seed1"
    assert (run_dir / "checkpoints" / "final.pt").exists() and (run_dir / "eval_test_seed0_ep10" / "summary.json").exists()

    good = _sweep(tmp_path)
    assert "0 ok, 0 resumed, 1 skipped, 0 failed" in run_script("total/sweep.py", "--config", str(good)).stdout
    (run_dir / "checkpoints" / "final.pt").unlink()  # interrupted after its last epoch checkpoint
    shutil.rmtree(run_dir / "eval_test_seed0_ep10")
    again = run_script("total/sweep.py", "--config", str(good)).stdout
    assert "0 ok, 1 resumed, 0 skipped, 0 failed" in again
    assert (run_dir / "checkpoints" / "final.pt").exists() and (run_dir / "eval_test_seed0_ep10" / "summary.json").exists()


def test_sweep_refuses_a_run_folder_trained_with_other_settings(tmp_path):
    run_dir = tmp_path / "results" / "PPO" / "Server1_Trap_seed1"
    budget = {"epochs": 2, "episodes": 16}
    assert "1 ok, 0 resumed" in run_script("total/sweep.py", "--config", str(_sweep(tmp_path, budget=budget))).stdout
    record = yaml.safe_load((run_dir / "sweep_run.yaml").read_text())
    assert record["epochs"] == 2 and record["data"] == str(ROOT / "data1") and record["device"] == "cpu"
    before = digests(run_dir)

    bigger = run_script("total/sweep.py", "--config", str(_sweep(tmp_path, budget={"epochs": 3, "episodes": 16})),
                        check=False)
    assert bigger.returncode == 1 and "0 ok, 0 resumed, 0 skipped, 1 failed" in bigger.stdout
    assert "refused" in bigger.stdout and "epochs 2 there, 3 here" in bigger.stdout
    overridden = run_script("total/sweep.py", "--config",
                            str(_sweep(tmp_path, budget=budget, overrides={"PPO": ["ppo.clip=0.1"]})), check=False)
    assert overridden.returncode == 1 and "sets [] there, ['ppo.clip=0.1'] here" in overridden.stdout
    assert digests(run_dir) == before  # refused runs leave every file as it was

    same = run_script("total/sweep.py", "--config", str(_sweep(tmp_path, budget=budget))).stdout
    assert "0 ok, 0 resumed, 1 skipped, 0 failed" in same
    more_eval = run_script("total/sweep.py", "--config",
                           str(_sweep(tmp_path, budget=budget, evaluate={"episodes": 12}))).stdout
    assert "1 ok, 0 resumed, 0 skipped" in more_eval  # a new evaluation in its own folder, same model
    assert (run_dir / "eval_test_seed0_ep12" / "summary.json").exists()
    assert all(digests(run_dir)[k] == v for k, v in before.items() if k.startswith(("checkpoints", "eval_test_seed0_ep10")))

    legacy = tmp_path / "results" / "PPO" / "Server1_Trap_seed2"  # trained by something that kept no record
    shutil.copytree(run_dir / "checkpoints", legacy / "checkpoints")
    proc = run_script("total/sweep.py", "--config", str(_sweep(tmp_path, budget=budget, seeds=[2])), check=False)
    assert proc.returncode == 1 and "has no sweep_run.yaml" in proc.stdout


def _alive_with(text: str) -> list[int]:
    """Pids of live processes whose command line mentions `text` (zombies excluded)."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if text in proc.joinpath("cmdline").read_bytes().decode(errors="replace") and \
                    " Z " not in proc.joinpath("stat").read_text().rsplit(")", 1)[1][:3]:
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def _interrupt_sweep(tmp_path: Path, sig: int, *flags: str) -> tuple[int, str, Path]:
    """Start a sweep with a budget it cannot finish, signal the driver once its trainer runs, and wait
    for the driver: (exit status, stderr, the run folder)."""
    cfg = _sweep(tmp_path, budget={"epochs": 100000, "episodes": 16})
    run_dir = tmp_path / "results" / "PPO" / "Server1_Trap_seed1"
    driver = subprocess.Popen([sys.executable, str(ROOT / "total" / "sweep.py"), "--config", str(cfg), *flags],
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              start_new_session=True, preexec_fn=sigint_enabled)
    try:
        for _ in range(1500):  # the trainer writes config.yaml once it is running
            if (run_dir / "config.yaml").exists() or driver.poll() is not None:
                break
            time.sleep(0.2)
        assert _alive_with(str(run_dir)), "the trainer never started"
        driver.send_signal(sig)
        _, err = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    for _ in range(150):  # the driver waits for its children; Ray's workers may take a moment more
        if not _alive_with(str(run_dir)):
            break
        time.sleep(0.2)
    return driver.returncode, err, run_dir


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc")
@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_to_the_sweep_stops_its_trainers(tmp_path, sig, code):
    returncode, err, run_dir = _interrupt_sweep(tmp_path, sig)
    assert returncode == code, err
    assert "stopped 1 running run(s) (PPO/Server1_Trap_seed1)" in err and "run the same command again" in err
    assert _alive_with(str(run_dir)) == []


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc")
def test_variants_train_into_their_own_folders_and_stay_idempotent(tmp_path):
    cfg = _sweep(tmp_path, algorithms=["TopoFreeRL"], budget={"epochs": 1, "episodes": 16},
                 overrides={"all": ["actor=per_server"]}, variants={"full": [], "noSE": ["se_gate=false"]})
    assert "2 ok, 0 resumed" in run_script("total/sweep.py", "--config", str(cfg)).stdout
    base = tmp_path / "results" / "TopoFreeRL"
    assert sorted(p.name for p in base.iterdir() if not p.is_symlink()) == ["Server1_Trap_full_seed1",
                                                                             "Server1_Trap_noSE_seed1"]
    for variant, gate in (("full", True), ("noSE", False)):
        run_dir = base / f"Server1_Trap_{variant}_seed1"
        record = yaml.safe_load((run_dir / "sweep_run.yaml").read_text())
        assert record["variant"] == variant and record["sets"] == ["actor=per_server"] + ([] if gate else
                                                                                          ["se_gate=false"])
        assert yaml.safe_load((run_dir / "config.yaml").read_text())["se_gate"] is gate
        assert (run_dir / "eval_test_seed0_ep10" / "summary.json").exists()
    assert "0 ok, 0 resumed, 2 skipped" in run_script("total/sweep.py", "--config", str(cfg)).stdout
    # the same folder with other overrides is refused, never reused
    other = _sweep(tmp_path, algorithms=["TopoFreeRL"], budget={"epochs": 1, "episodes": 16},
                   overrides={"all": ["actor=per_server"]}, variants={"noSE": ["guidance.enabled=false"]})
    proc = run_script("total/sweep.py", "--config", str(other), check=False)
    assert proc.returncode == 1 and "refused" in proc.stdout and "sets" in proc.stdout


def test_ablation_sweep_expands_to_distinct_folders_and_bad_variants_are_rejected(tmp_path):
    sys.path.insert(0, str(ROOT / "total"))
    from total.sweep import expand, load_sweep
    runs = expand(load_sweep(ROOT / "sweeps/ablation.yaml"))
    assert len(runs) == 7 * 3 and len({r.dir for r in runs}) == 21 and {r.algo for r in runs} == {"TopoFreeRL"}
    no_se = next(r for r in runs if r.variant == "noSE" and r.seed == 42)
    assert no_se.dir == ROOT / "results" / "ablation" / "TopoFreeRL" / "Server1_Trap_contention_noSE_seed42"
    study = next(r for r in expand(load_sweep(ROOT / "sweeps/contention.yaml")) if r.algo == "TopoFreeRL").sets
    # the study's trainer, one switch changed
    assert study[-1] == "train_env.trap_surcharge_scale=0" and no_se.sets == (*study, "se_gate=false")
    assert next(r for r in runs if r.variant == "dense").sets[-2:] == ("actor=dense", "guidance.prior=telemetry")
    plain = expand(load_sweep(ROOT / "sweeps/contention.yaml"))  # no variants: the folders as before
    assert {r.dir.name for r in plain} == {f"Server1_Trap_contention_seed{s}" for s in (42, 43, 44, 45, 46)}
    assert all(r.variant == "" and "variant" not in r.requested() for r in plain)
    for bad in ({"no_se": []}, {"x": "se_gate=false"}, ["noSE"]):
        proc = run_script("total/sweep.py", "--config", str(_sweep(tmp_path, variants=bad)), check=False)
        assert proc.returncode != 0 and "'variants' maps a name" in proc.stderr


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray is not installed (requirements-ray.txt)")
def test_sigterm_to_a_ray_sweep_shuts_ray_down_with_its_trainer(tmp_path):
    returncode, err, run_dir = _interrupt_sweep(tmp_path, signal.SIGTERM, "--backend", "ray", "--workers", "1")
    assert returncode == 143, err
    assert "interrupted by SIGTERM" in err and "run the same command again" in err
    assert _alive_with(str(run_dir)) == []


def test_sweep_rejects_unknown_keys_and_algorithms(tmp_path):
    bad = _sweep(tmp_path, algorithm=["PPO"])
    proc = run_script("total/sweep.py", "--config", str(bad), check=False)
    assert proc.returncode != 0 and "unknown key(s) ['algorithm']" in proc.stderr
    bad = _sweep(tmp_path, algorithms=["DQN"])
    proc = run_script("total/sweep.py", "--config", str(bad), check=False)
    assert proc.returncode != 0 and "unknown algorithm(s) ['DQN']" in proc.stderr


def test_shipped_sweeps_expand():
    sys.path.insert(0, str(ROOT / "total"))
    from total.sweep import expand, load_sweep
    quick, paper = expand(load_sweep(ROOT / "sweeps/quick.yaml")), expand(load_sweep(ROOT / "sweeps/paper.yaml"))
    assert len(quick) == 4 and {r.algo for r in quick} == {"TopoFreeRL", "PPO"}
    # relative paths in a sweep file are relative to the repository; quick runs never share paper's folders
    assert quick[0].data == str(ROOT / "data1") and quick[0].results == str(ROOT / "results" / "quick")
    assert paper[0].results == str(ROOT / "results")
    assert len(paper) == 12 and {r.seed for r in paper} == {42, 43, 44}
    assert paper[0].epochs == 100 and paper[0].episodes == 200 and paper[0].sets == ()


# The sweeps that train the study's methods: each names the recipe instead of pasting it. (The sweeps
# that chose a recipe's settings, e.g. sweeps/candidates.yaml, train the trainers before it, pasted.)
STUDY_SWEEPS = ("contention", "multi_region_baselines", "ablation", "multi_region_contention", "server2_trap")
# sweeps/contention.yaml's `overrides` as pasted before it named its recipe: the settings of its run folders
PASTED_CONTENTION = """
overrides:
  all: [contention.arrival_rate=8]
  TopoFreeRL: [actor=per_server, ppo.update_epochs=4, ppo.minibatch=512, guidance.prior=greedy_queue,
               guidance.latency_weight=0.9, guidance.alpha0=3, guidance.alpha_slope=3,
               train_env.trap_surcharge_scale=0]
  PPO: [ppo.update_epochs=4, ppo.minibatch=512, dwa.enabled=false, "dwa.initial=[0.75, 0.10, 0.15]"]
  PFAPPO: [ppo.update_epochs=4, ppo.minibatch=512, dwa.enabled=false, "dwa.initial=[0.75, 0.10, 0.15]"]
  STARK: [val_every=5]
"""
PASTED_ABLATION_ALL = ("contention.arrival_rate=8, actor=per_server, ppo.update_epochs=4, ppo.minibatch=512, "
                       "guidance.prior=greedy_queue, guidance.latency_weight=0.9, guidance.alpha0=3, "
                       "guidance.alpha_slope=3, train_env.trap_surcharge_scale=0")


def _study_sweep(name: str, **changes) -> dict:
    from total.sweep import check_sweep
    cfg = yaml.safe_load((ROOT / f"sweeps/{name}.yaml").read_text()) | changes
    return check_sweep(cfg, f"sweeps/{name}.yaml", trains=False)


def test_study_sweeps_name_the_recipe_and_train_what_train_py_trains():
    from schedkit.config import load_recipe, recipe_sets
    from schedkit.registry import get
    from schedkit.trainer import parse_train_args, train_config
    from total.sweep import expand, load_sweep, training_config
    for name in STUDY_SWEEPS:
        cfg = load_sweep(ROOT / f"sweeps/{name}.yaml")
        assert cfg["recipe"] == "contention" and cfg["overrides"]["all"] == ["contention.arrival_rate=8"], name
        assert set(cfg["overrides"]) == {"all"}, f"{name} pastes settings beside its recipe"
        for run in expand(cfg):
            recipe = recipe_sets(load_recipe(ROOT / get(run.algo).folder / "config.yaml", "contention"))
            assert run.recipe and run.sets[:len(recipe) + 1] == ("contention.arrival_rate=8", *recipe), name
    # `train.py --profile contention` at the study's load trains exactly the study's runs
    for run in {r.algo: r for r in expand(load_sweep(ROOT / "sweeps/contention.yaml"))}.values():
        defaults = ROOT / get(run.algo).folder / "config.yaml"
        args = parse_train_args("", ["--profile", "contention", "--arrival-rate", "8", "--data", run.data,
                                     "--regions", *run.regions, "--seed", str(run.seed), "--epochs", str(run.epochs),
                                     "--episodes", str(run.episodes)])
        by_hand = train_config(defaults, args, getattr(get(run.algo).load(), "config_choices", None))
        assert by_hand == training_config(run) and by_hand["recipe"] == "contention", run.algo


def test_a_recipe_expands_to_the_settings_its_sweep_pasted():
    """Folders trained before a sweep named its recipe hold the same settings: same keys and values."""
    from schedkit.config import parse_set
    from total.sweep import _same, expand
    for name, pasted in (("contention", yaml.safe_load(PASTED_CONTENTION)),
                         ("ablation", {"overrides": {"all": PASTED_ABLATION_ALL.split(", ")}}),
                         ("server2_trap", {"overrides": {"all": PASTED_ABLATION_ALL.split(", ")}})):
        now, before = expand(_study_sweep(name)), expand(_study_sweep(name, recipe=None, **pasted))
        assert [r.dir for r in now] == [r.dir for r in before]
        for new, old in zip(now, before, strict=True):
            assert parse_set(list(new.sets)) == parse_set(list(old.sets)) and _same("sets", list(old.sets),
                                                                                    list(new.sets)), new.name
            assert new.sets == old.sets or new.algo in ("PPO", "PFAPPO")  # only 0.10 is written 0.1


def test_a_folder_recorded_with_the_pasted_settings_is_kept_by_the_recipe_sweep(tmp_path):
    from total.sweep import claim, expand
    pasted = expand(_study_sweep("contention", recipe=None, results=str(tmp_path), **yaml.safe_load(PASTED_CONTENTION)))
    named = {r.dir: r for r in expand(_study_sweep("contention", results=str(tmp_path)))}
    for old in pasted:
        (old.dir / "checkpoints").mkdir(parents=True)
        (old.dir / "checkpoints" / "final.pt").write_bytes(b"")
        (old.dir / "sweep_run.yaml").write_text(yaml.safe_dump(old.requested()))
        assert claim(named[old.dir]) is None, old.name  # kept: the re-run skips it
    other = next(r for r in pasted if r.algo == "PPO")
    (other.dir / "sweep_run.yaml").write_text(yaml.safe_dump(other.requested() | {"sets": list(other.sets[:-1])}))
    assert "refused" in claim(named[other.dir])


def test_a_sweep_recipe_is_checked(tmp_path):
    for recipe, want in (("nope", "field 'recipe': expected a profile's name"),
                         (["contention"], "field 'recipe'"),
                         ("paper", "PPO has no recipe PPO_algorithm/paper.yaml")):
        proc = run_script("total/sweep.py", "--dry-run", "--config",
                          str(_sweep(tmp_path, recipe=recipe, profiles=[recipe] if recipe == "paper" else ["contention"])),
                          check=False)
        assert proc.returncode != 0 and want in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    proc = run_script("total/sweep.py", "--dry-run", "--config", str(_sweep(tmp_path, recipe="contention")), check=False)
    assert proc.returncode != 0 and "must be [contention]; got ['paper']" in proc.stderr


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray is not installed (requirements-ray.txt)")
def test_ray_backend_on_a_local_instance(tmp_path):
    cfg = _sweep(tmp_path, seeds=[1, 2], budget={"epochs": 2, "episodes": 16})
    proc = run_script("total/sweep.py", "--config", str(cfg), "--backend", "ray", "--workers", "2")
    assert "2 ok, 0 resumed, 0 skipped, 0 failed" in proc.stdout
    for seed in (1, 2):
        assert (tmp_path / "results" / "PPO" / f"Server1_Trap_seed{seed}" / "eval_test_seed0_ep10" / "summary.json").exists()


def test_a_run_folder_recorded_under_the_older_name_Stark_is_kept(tmp_path):
    from total.sweep import claim, expand
    run = next(r for r in expand(_study_sweep("paper", results=str(tmp_path))) if r.algo == "STARK")
    (run.dir / "checkpoints").mkdir(parents=True)
    (run.dir / "checkpoints" / "final.pt").write_bytes(b"")
    (run.dir / "sweep_run.yaml").write_text(yaml.safe_dump(run.requested() | {"algo": "Stark"}))
    assert claim(run) is None
    (run.dir / "sweep_run.yaml").write_text(yaml.safe_dump(run.requested() | {"algo": "PPO"}))
    assert "refused" in claim(run)


def test_a_sweep_naming_the_older_Stark_says_its_new_name(tmp_path):
    from schedkit.config import ConfigError
    from total.sweep import check_sweep
    with pytest.raises(ConfigError, match=r"unknown algorithm\(s\) \['Stark'\].*\(Stark is now STARK\)"):
        check_sweep({"algorithms": ["Stark"]}, "old.yaml", trains=False)
