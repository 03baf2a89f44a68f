"""Hard to break: every bad value through every door (a flag, --set, a config file, a sweep file, the
generator's files) is one `error:` line naming it and what was expected, never a traceback, a hang, a
silently ignored setting or a write outside the results root. Through the scripts, as a user runs them."""
from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from conftest import ROOT, one_line_error, run_script

from edgesim.registry import PROFILES
from schedkit.cli import Doing, os_error_line
from schedkit.config import RANGES, SHARED_DEFAULTS, ConfigError, load_yaml, resolve
from schedkit.registry import get, learned

HUGE = "18446744073709551616"  # 2**64
TRAIN = "TopoFreeRL/train.py"


def _nothing_written(root: Path) -> None:
    assert not root.exists() or not any(root.rglob("*")), list(root.rglob("*"))


# ----------------------------------------------------------------------------- numbers on the command line

@pytest.mark.parametrize("script, args, needle", [
    (TRAIN, ["--seed", HUGE], "--seed: expected an integer >= 0 and <= 4294967295"),
    (TRAIN, ["--seed", "-1"], "--seed"),
    ("PPO_algorithm/train.py", ["--seed", "2**64"], "--seed"),
    ("Heuristics/inference.py", ["--seed", "-5"], "--seed: expected an integer >= 0"),
    ("Heuristics/tune.py", ["--seed", "-5"], "--seed"),
    ("Stark_Scheduler/inference.py", ["--seed", HUGE, "--model", "x.pt"], "--seed"),
    ("total/evaluate_all.py", ["--eval-seeds", "0", "-1"], "--eval-seeds"),
    ("total/reproduce.py", ["--seeds", HUGE], "--seeds"),
    (TRAIN, ["--epochs", str(10**15)], "--epochs: expected an integer >= 1 and <= 100000"),
    ("PFAPPO/train.py", ["--episodes", str(10**15)], "--episodes"),
    ("Heuristics/inference.py", ["--episodes", str(10**15)], "--episodes: expected an integer >= 1 and <= 10000000"),
    (TRAIN, ["--threads", str(10**6)], "--threads: expected an integer >= 1 and <= 1024"),
    ("Heuristics/inference.py", ["--worlds", str(10**9)], "--worlds: expected an integer >= 1 and <= 65536"),
    (TRAIN, ["--max-in-flight", str(10**9)], "--max-in-flight"),
    (TRAIN, ["--arrival-rate", "1e300"], "--arrival-rate: expected a finite number > 0"),
    ("Heuristics/inference.py", ["--latency-weight", "nan"], "--latency-weight: expected a number in [0, 1]"),
    ("total/sweep.py", ["--config", "sweeps/quick.yaml", "--workers", "0"], "--workers"),
    ("total/reproduce_contention.py", ["--rates", "1e300"], "--rates"),
    ("total/plot_trap_severity.py", ["--scales", "-1"], "--scales"),
    ("total/plot_learning_curves.py", ["--smooth", "0"], "--smooth"),
    ("data1/generate.py", ["--servers", str(10**9), "--out", "x"], "--servers: expected an integer >= 2 and <= 100000"),
    ("data1/generate.py", ["--servers", "10", "--train-tasks", "0", "--out", "x"], "--train-tasks"),
    ("data1/generate.py", ["--servers", "-5", "--out", "x"], "--servers"),
    ("data1/generate.py", ["--servers", "10", "--steps", "1000", "--out", "x"], "--steps"),
])
def test_an_absurd_number_on_the_command_line_is_one_line(script, args, needle, tmp_path):
    one_line_error(run_script(script, *args, check=False, cwd=tmp_path), needle)
    _nothing_written(tmp_path)


@pytest.mark.parametrize("sets, needle", [
    (["lr=1e300"], "config 'lr': expected a finite number > 0 and <= 1, got 1e+300"),
    (["guidance.alpha0=-1e300"], "config 'guidance.alpha0': expected a finite number >= 0"),
    (["seed=-1"], "config 'seed'"),
    (["seed=4294967296"], "config 'seed': expected an integer >= 0 and <= 4294967295"),
    ([f"epochs={10**15}"], "config 'epochs'"),
    ([f"ppo.minibatch={10**30}"], "config 'ppo.minibatch'"),
    (["contention.worlds=1000000000", "profile=contention"], "contention.worlds: expected an integer >= 1"),
    (["=1"], "--set '=1': expected a dotted key"),
    (["a..b=1"], "--set 'a..b=1': expected a dotted key"),
    (["ppo.=1"], "expected a dotted key"),
    (["device=cuda:x"], "device 'cuda:x' is not a device"),
    (["regions=[../x]"], "config 'regions': expected a plain name"),
    (["lr=" + "9" * 400], "config 'lr': expected a finite number"),  # an int beyond every float
    (["dwa.initial=[0.5, 0.5, " + "9" * 400 + "]"], "config 'dwa.initial'"),
    (["seed=" + "9" * 5000], "the value is not valid YAML"),  # beyond Python's 4300-digit int parsing
])
def test_an_absurd_config_value_is_one_line_and_writes_nothing(sets, needle, tmp_path):
    results = tmp_path / "results"
    args = [arg for s in sets for arg in ("--set", s)]
    one_line_error(run_script(TRAIN, *args, "--results", str(results), check=False), needle)
    _nothing_written(results)


def test_stark_heads_that_do_not_divide_d_model_are_one_line(tmp_path):
    one_line_error(run_script("Stark_Scheduler/train.py", "--set", "model.heads=3", "--results", str(tmp_path),
                              check=False), "heads must divide d_model", "model.heads 3")
    _nothing_written(tmp_path)


def test_worlds_that_cannot_be_allocated_are_refused_at_every_door(tmp_path):
    big = ["--profile", "contention", "--worlds", "65536", "--max-in-flight", "65536"]
    for script in (TRAIN, "Heuristics/inference.py"):
        one_line_error(run_script(script, *big, "--out", str(tmp_path / "out"), check=False),
                       "worlds x max_in_flight must be at most 16777216")
    _nothing_written(tmp_path)


def test_every_numeric_default_has_a_range_its_default_meets():
    """Every numeric key of every algorithm's config.yaml, of the shared defaults and of every profile
    block has a RANGES entry of its own kind (integer or real) that its default satisfies."""
    for algo in learned():
        cfg = resolve(ROOT / get(algo).folder / "config.yaml")
        flat = _numeric(cfg)
        missing = sorted(k for k in flat if k not in RANGES and not k.startswith("train_env."))
        assert not missing, f"{algo}: numeric keys without a range in schedkit/config.py RANGES: {missing}"
        for key, value in flat.items():
            if key in RANGES:
                assert RANGES[key].integer == isinstance(value, int), key
                RANGES[key].check(value, key)
    assert set(_numeric(SHARED_DEFAULTS)) <= set(RANGES)


def _numeric(node: dict, where: str = "") -> dict:
    out: dict = {}
    for key, value in node.items():
        if isinstance(value, dict):
            out |= _numeric(value, f"{where}{key}.")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[f"{where}{key}"] = value
    return out


# ----------------------------------------------------------------------------- one seed type, one set of profiles

def test_heuristics_and_training_refuse_the_same_seed():
    for script in (TRAIN, "Heuristics/inference.py", "Heuristics/tune.py", "TopoFreeRL/inference.py"):
        one_line_error(run_script(script, "--seed", "-5", check=False), "--seed: expected an integer >= 0")


@pytest.mark.parametrize("script, args, needle", [
    (TRAIN, ["--profile", "paper", "--arrival-rate", "8"],
     "--arrival-rate is a contention parameter, but the profile is paper; add --profile contention"),
    (TRAIN, ["--trap-loss", "0.5"], "--trap-loss is a contention parameter"),
    (TRAIN, ["--set", "contention.arrival_rate=8"], "--set contention.arrival_rate is a contention parameter"),
    ("Heuristics/inference.py", ["--arrival-rate", "8"], "--arrival-rate is a contention parameter"),
    ("Heuristics/tune.py", ["--profile", "paper", "--worlds", "4"], "--worlds is a contention parameter"),
    ("total/evaluate_all.py", ["--arrival-rate", "8"], "--arrival-rate is a contention parameter"),
])
def test_a_flag_of_another_profile_is_refused_not_ignored(script, args, needle, tmp_path):
    results = tmp_path / "results"
    one_line_error(run_script(script, *args, "--results" if script.startswith(("TopoFreeRL", "total")) else "--out",
                              str(results), check=False), needle)
    _nothing_written(results)


def test_another_profiles_block_in_a_config_file_is_a_default_not_an_error(tmp_path):
    user = tmp_path / "user.yaml"
    user.write_text("profile: paper\ncontention:\n  arrival_rate: 8\n")
    cfg = resolve(ROOT / "TopoFreeRL" / "config.yaml", user)
    assert cfg["profile"] == "paper" and cfg["contention"]["arrival_rate"] == 8


# ----------------------------------------------------------------------------- region names are names

@pytest.mark.parametrize("script, flag", [
    (TRAIN, "--regions"), ("Heuristics/inference.py", "--region"), ("total/evaluate_all.py", "--region"),
    ("total/plot_all_comparison.py", "--region"), ("total/plot_trap_share.py", "--regions"),
])
def test_a_region_given_as_a_path_writes_nothing_outside_the_results(script, flag, tmp_path):
    results = tmp_path / "a" / "b" / "results"
    out = ["--results", str(results)] if script != "Heuristics/inference.py" else ["--out", str(results / "h")]
    one_line_error(run_script(script, flag, "../../x", *out, check=False, cwd=tmp_path),
                   f"argument {flag}: expected a plain name", "'../../x'")
    assert sorted(p.name for p in tmp_path.rglob("*")) == [], list(tmp_path.rglob("*"))


@pytest.mark.parametrize("script", ["total/make_table.py", "total/plot_pareto.py"])
def test_an_evaluation_tag_given_as_a_path_is_refused(script, tmp_path):
    one_line_error(run_script(script, "--tag", "../../x", "--results", str(tmp_path / "r"), check=False),
                   "argument --tag: expected a plain name")
    _nothing_written(tmp_path)


# ----------------------------------------------------------------------------- sweep files

@pytest.mark.parametrize("text, needle", [
    ("seeds: 3\n", "field 'seeds': expected a non-empty list of seeds"),
    ("seeds: [a]\n", "field 'seeds'"),
    (f"seeds: [{HUGE}]\n", "field 'seeds'"),
    ("seeds: [1, 1]\n", "field 'seeds': an item is listed twice"),
    ("algos: TopoFreeRL\n", "unknown key(s) ['algos']"),
    ("algorithms: TopoFreeRL\n", "field 'algorithms': expected a non-empty list of names"),
    ("algorithms: [DQN]\n", "unknown algorithm(s) ['DQN']"),
    ("profiles: [crowded]\n", "unknown profile(s) ['crowded']"),
    ("variants: [1, 2]\n", "'variants' maps a name"),
    ("regions: [['../../x']]\n", "field 'regions'"),
    ("regions: ['..']\n", "field 'regions'"),
    ("set: 5\n", "unknown key(s) ['set']"),
    ("", "the sweep file sets nothing"),
    ("- a\n- b\n", "expected a mapping of keys to values at the top level"),
    ("seeds: [1]\nseeds: [2]\n", "duplicate key 'seeds'"),
    ("budget: 5\n", "field 'budget': expected a mapping of epochs, episodes"),
    ("budget: {epochs: 1000000000000000}\n", "field 'budget.epochs': expected an integer >= 1 and <= 100000"),
    ("budget: {epoch: 3}\n", "field 'budget'"),
    ("evaluate: {split: val}\n", "field 'evaluate.split'"),
    ("evaluate: {episodes: 0}\n", "field 'evaluate.episodes'"),
    ("resources: {cpus: -1}\n", "field 'resources.cpus'"),
    ("device: cuda:x\n", "field 'device'"),
    ("name: 5\n", "field 'name'"),
    ("overrides: {all: 5}\n", "'overrides' maps 'all' or an algorithm"),
    ("overrides: {all: [lr=1e300]}\n", "the runs of TopoFreeRL under profile paper: config 'lr'"),
    ("overrides: {all: [contention.arrival_rate=8]}\n", "--set contention.arrival_rate is a contention parameter"),
    ("algorithms: [STARK]\nvariants: {odd: [model.heads=3]}\n", "variant odd: config 'model.d_model' and"),
    ("!!python/object/apply:os.mkdir [pwned]\n", "not valid YAML"),
])
def test_a_bad_sweep_file_is_one_line_naming_the_file_and_field(text, needle, tmp_path):
    sweep = tmp_path / "bad.yaml"
    sweep.write_text(text)
    one_line_error(run_script("total/sweep.py", "--config", str(sweep), "--dry-run", check=False, cwd=tmp_path),
                   "bad.yaml", needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]


def test_every_shipped_sweep_passes_the_check_and_a_dry_run_runs_nothing(tmp_path):
    for sweep in sorted((ROOT / "sweeps").glob("*.yaml")):
        proc = run_script("total/sweep.py", "--config", str(sweep), "--dry-run", "--results", str(tmp_path))
        assert proc.stdout.splitlines()[0].startswith(f"sweep {sweep.stem}:"), proc.stdout
    _nothing_written(tmp_path)


# ----------------------------------------------------------------------------- config files and generator files

@pytest.mark.parametrize("make, needle", [
    (lambda d: d, "config file is a folder"),
    (lambda d: Path("/dev/zero"), "config file is not a regular file"),
    (lambda d: _write(d / "bin.yaml", bytes(range(256))), "not UTF-8 text"),
    (lambda d: _write(d / "list.yaml", b"- lr: 1\n"), "expected a mapping of keys to values"),
    (lambda d: _write(d / "tag.yaml", b"lr: !!python/object/apply:os.mkdir [pwned]\n"), "not valid YAML"),
])
def test_a_config_that_is_not_a_yaml_mapping_is_one_line(make, needle, tmp_path):
    config = make(tmp_path)
    one_line_error(run_script(TRAIN, "--config", str(config), "--results", str(tmp_path / "results"),
                              check=False, cwd=tmp_path), needle)
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "results").exists()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("make, needle", [
    (lambda d: _write(d / "bin.csv", bytes(range(256)) * 4), "--sites file is not UTF-8 text"),
    (lambda d: Path("/dev/zero"), "--sites file is not a regular file"),
    (lambda d: d, "--sites file is a folder"),
    (lambda d: _write(d / "odd.csv", b'lon,lat\n"1,2\n'), "--sites file is not a readable CSV"),
])
def test_the_generator_refuses_an_unreadable_sites_file_with_one_line(make, needle, tmp_path):
    sites = make(tmp_path)
    out = tmp_path / "gen"
    one_line_error(run_script("data1/generate.py", "--servers", "10", "--sites", str(sites), "--out", str(out),
                              check=False), needle)
    assert not out.exists()


# ----------------------------------------------------------------------------- disk errors

def test_a_full_disk_during_training_names_the_path_and_the_resume_command(tmp_path, capsys, monkeypatch):
    """ENOSPC cannot be caused portably, so the trainer raises it after its first checkpoint, where a full
    disk would: the one line names the file, says to free space and gives the --resume command."""
    from schedkit.runs import save_epoch_checkpoint
    from schedkit.trainer import train_main
    from TopoFreeRL.agent import TopoFreeAgent

    def full_disk(cfg, ds, make_agent, run, resume, progress):
        save_epoch_checkpoint(run, 1, {"epoch": 1}, 3)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(run / "metrics.csv"))

    run = tmp_path / "run"
    monkeypatch.setattr("sys.argv", [TRAIN])
    with pytest.raises(SystemExit) as stop:
        train_main(ROOT / "TopoFreeRL" / "config.yaml", TopoFreeAgent, "", ["--out", str(run), "--no-progress"],
                   train_fn=full_disk)
    line = str(stop.value.code)
    assert line.startswith(f"error: {run / 'metrics.csv'}: No space left on device; the disk is full; free space")
    assert line.endswith(f"continue with: python {TRAIN} --resume {run}") and "\n" not in line


def test_a_disk_error_without_a_file_name_names_the_folder_being_written(tmp_path):
    for code, advice in ((errno.EACCES, "no permission to write there"), (errno.EROFS, "read-only"),
                         (errno.EDQUOT, "quota")):
        line = os_error_line(OSError(code, os.strerror(code)), Doing(writing=tmp_path, then=lambda: "then this"))
        assert line.startswith(f"{tmp_path}: {os.strerror(code)}; ") and advice in line and line.endswith("then this")


def test_a_results_root_that_is_a_file_is_one_line_naming_it(tmp_path):
    blocked = tmp_path / "results"
    blocked.write_text("a file where the results root goes")
    one_line_error(run_script(TRAIN, "--epochs", "1", "--episodes", "2", "--results", str(blocked), "--no-progress",
                              check=False), str(blocked))


# ----------------------------------------------------------------------------- every script explains itself

@pytest.mark.parametrize("script", ["data1/generate.py", "Heuristics/tune.py", *sorted(
    str(p.relative_to(ROOT)) for p in (ROOT / "total").glob("*.py") if "__main__" in p.read_text())])
def test_every_script_prints_its_help(script):
    assert "usage:" in run_script(script, "--help").stdout


def test_the_config_loader_still_reads_every_shipped_config_and_sweep():
    for path in [*(ROOT / get(a).folder / "config.yaml" for a in learned()), *(ROOT / "sweeps").glob("*.yaml")]:
        assert isinstance(load_yaml(path), dict)
    with pytest.raises(ConfigError, match="is a contention parameter"):
        resolve(ROOT / "PPO_algorithm" / "config.yaml", sets=["contention.worlds=2"])
    assert set(PROFILES) == {"paper", "contention", "serving"}
