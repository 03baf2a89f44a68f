"""Hard to break at the process's edges: a file-size limit, a closed standard output (a script's, a
sweep's), Ctrl-C outside training, YAML nested past the parser, a sweep whose results root is a file, a
policy that returns fractional servers, a checkpoint whose server list contradicts its fingerprint, an
unreadable metrics.csv. Each ends in one line saying what happened, through real child processes where the
edge is the process's own (signals, limits, pipes)."""
from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch
from conftest import ROOT, one_line_error, run_script, sigint_enabled

from schedkit.gym_eval import evaluate_policy
from schedkit.io import interrupts_held

pytestmark = pytest.mark.slow  # trains and evaluates through the scripts
HEURISTICS = ["Heuristics/inference.py", "--policy", "greedy", "--no-progress"]


def child(args: list[str], **kw) -> subprocess.Popen:
    """The script in a child process that writes no bytecode: under a file-size limit a .pyc would be cut
    short and break every later import of its module."""
    return subprocess.Popen([sys.executable, "-B", *args], cwd=ROOT, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **kw)


def test_a_file_size_limit_names_the_file_being_written(tmp_path):
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (2_000, 2_000))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing us
    proc = child([*HEURISTICS, "--episodes", "200", "--out", str(tmp_path / "out")], preexec_fn=limit)
    out, err = proc.communicate()
    line = one_line_error(subprocess.CompletedProcess(proc.args, proc.returncode, out, err), "File too large",
                          "ulimit -f")
    assert str(tmp_path / "out") in line


def test_a_closed_standard_output_is_one_line_naming_it(tmp_path):
    proc = subprocess.Popen([sys.executable, *HEURISTICS, "--episodes", "2", "--out", str(tmp_path / "out")],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()
    err = proc.stderr.read()
    proc.wait()
    one_line_error(subprocess.CompletedProcess(proc.args, proc.returncode, "", err), "standard output",
                   "Broken pipe")
    assert "Exception ignored" not in err


def test_a_sweep_whose_output_is_closed_early_says_so_in_one_line():
    """`total/sweep.py --dry-run | head -0`: the listing meets a closed pipe; one line, as the other scripts."""
    proc = child(["total/sweep.py", "--config", "sweeps/ablation.yaml", "--dry-run"])
    proc.stdout.close()
    err = proc.stderr.read()
    proc.wait()
    one_line_error(subprocess.CompletedProcess(proc.args, proc.returncode, "", err), "standard output",
                   "Broken pipe")


def test_ctrl_c_during_an_evaluation_is_one_line_and_leaves_only_whole_files(tmp_path):
    out = tmp_path / "out"
    proc = child([*HEURISTICS, "--episodes", "100000", "--out", str(out)], preexec_fn=sigint_enabled)
    while not (out / ".lock").exists() and proc.poll() is None:  # the evaluation has claimed its folder
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate()
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert "interrupted:" in err and "run the same command again" in err
    assert not list(out.glob("*.tmp")) and not (out / "summary.json").exists()


def test_a_signal_another_thread_receives_waits_for_the_end_of_a_held_block():
    """While the main thread holds SIGTERM, the kernel hands it to another thread, and Python would run the handler
    in the main thread at once, inside the block (a pool's start cut between a fork and its bookkeeping left a
    worker no one stopped): the handler runs after the block."""
    idle = threading.Event()
    other = threading.Thread(target=idle.wait)  # a thread that does not hold SIGTERM
    other.start()
    order: list[str] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: order.append("handled"))
    try:
        with interrupts_held():
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(60_000):  # until the other thread has taken it (it leaves the pending set then)
                if signal.SIGTERM not in signal.sigpending():
                    break
                time.sleep(0.001)
            time.sleep(0.05)  # the main thread's next checks, where it would run the handler
            order.append("block ended")
        for _ in range(60_000):
            if "handled" in order:
                break
            time.sleep(0.001)
    finally:
        signal.signal(signal.SIGTERM, previous)
        idle.set()
        other.join()
    assert order == ["block ended", "handled"]


def test_yaml_nested_past_the_parser_is_one_line(tmp_path):
    config = tmp_path / "deep.yaml"
    config.write_text("lr: " + "[" * 5000 + "]" * 5000 + "\n")
    one_line_error(run_script("TopoFreeRL/train.py", "--config", str(config), check=False), str(config),
                   "nested too deeply")


def test_a_sweep_whose_results_root_is_a_file_is_one_line(tmp_path):
    (tmp_path / "f").write_text("not a folder")
    one_line_error(run_script("total/sweep.py", "--config", "sweeps/quick.yaml", "--results", str(tmp_path / "f"),
                              check=False), "results root exists and is not a folder")


def test_evaluate_policy_refuses_fractional_servers():
    def fractional(obs: dict, mask: np.ndarray) -> np.ndarray:
        return np.argmax(mask, axis=-1) + 0.7
    with pytest.raises(ValueError, match="expected integer server indices"):
        evaluate_policy(fractional, episodes=2, progress=False)


def test_a_checkpoint_whose_servers_contradict_its_fingerprint_is_refused(tmp_path):
    run = tmp_path / "run"
    run_script("TopoFreeRL/train.py", "--epochs", "1", "--episodes", "4", "--no-progress", "--out", str(run))
    state = torch.load(run / "checkpoints" / "final.pt", weights_only=True)
    state["dataset"]["server_ids"] = state["dataset"]["server_ids"][:2]
    forged = tmp_path / "forged.pt"
    torch.save(state, forged)
    one_line_error(run_script("TopoFreeRL/inference.py", "--model", str(forged), "--episodes", "2", "--no-progress",
                              "--out", str(tmp_path / "eval"), check=False), "server_ids", "damaged")


def test_learning_curves_refuse_a_metrics_file_without_integer_epochs(tmp_path):
    run = tmp_path / "results" / "TopoFreeRL" / "Server1_Trap_seed42_x"
    run.mkdir(parents=True)
    (run / "metrics.csv").write_text("epoch,return\nx,y\n")
    one_line_error(run_script("total/plot_learning_curves.py", "--results", str(tmp_path / "results"),
                              "--figures", str(tmp_path / "figures"), check=False), "metrics.csv", "epoch")
