"""Environment throughput: batched simulator steps/s vs batch size and server count, next to the
plain one-episode-at-a-time scalar model (edgesim/scalar_model.py, its topology built once), as a
ratio, and the Gymnasium single env (paper: the scalar model plus observation and info; contention:
a batch-1 simulator) against the same scalar model. Then the queueing profiles side by side on the
first server count: contention and serving (docs/simulator.md §5, §6) at --profile-batches worlds,
both with --max-in-flight workflows per world (serving's default of 4096 would hold 16M slots at
4096 worlds), in decisions/s and ms per decision, with serving's cost as a multiple of contention's.

    python bench/env_throughput.py                  # 500 / 2000 / 10000 servers, B = 1, 256, 4096
    python bench/env_throughput.py --json out.json  # also one JSON object (bench/record.py) to out.json

Actions are random valid servers (drawn in O(B) inside the timed loop). Each figure is the median
of --repeats timed runs after a warm-up (for the queueing profiles --profile-warmup steps, so that
the worlds fill up before the timing). Datasets other than the committed 500-server one are
generated once into bench/.cache/ by data1/generate.py.
"""
from __future__ import annotations

import argparse
import functools
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from bench.record import add_json_flag, emit, record
from edgesim.dataset import Dataset, load_dataset
from edgesim.gym_wrappers import EdgeMoEEnv
from edgesim.registry import get_profile, make_simulator
from edgesim.scalar_model import ScalarEpisode, ScalarTopology
from edgesim.serving import ServingSimulator
from edgesim.simulator import Simulator

ROOT = Path(__file__).resolve().parents[1]

CACHE = ROOT / "bench" / ".cache"


def dataset(servers: int) -> Dataset:
    """The committed default dataset for 500 servers, else a cached generated one."""
    if servers == 500:
        return load_dataset(ROOT / "data1", "Server1_Trap")
    name = f"Bench{servers}_Trap"
    if not (CACHE / name / "tasks.csv").exists():
        subprocess.run([sys.executable, str(ROOT / "data1" / "generate.py"), "--servers", str(servers), "--seed", "0",
                        "--out", str(CACHE / name), "--force"], check=True, stdout=subprocess.DEVNULL)
    return load_dataset(CACHE, name)


def timed_steps(sim, gen: torch.Generator, n: int) -> float:
    """Seconds for `n` steps of random valid decisions, waiting for the device at both ends."""
    if sim.device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        sim.step(sim.sample_valid(gen))
    if sim.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def batched_steps_per_s(ds: Dataset, batch: int, device: str, steps: int, repeats: int) -> float:
    sim = Simulator(ds, batch_size=batch, seed=0, device=device)
    gen = torch.Generator(sim.device).manual_seed(0)
    run = functools.partial(timed_steps, sim, gen)

    run(max(5, steps // 10))  # warm-up
    return statistics.median(steps * batch / run(steps) for _ in range(repeats))


def profile_row(ds: Dataset, profile: str, batch: int, max_in_flight: int, device: str, warmup: int, steps: int,
                repeats: int) -> dict:
    """Decisions/s of a queueing profile (one decision per world and step), random valid servers, after
    `warmup` steps that fill the worlds."""
    params = get_profile(profile).parse({"worlds": batch, "max_in_flight": max_in_flight})
    sim = make_simulator(ds, batch, "train", "random", 0, device, profile, params)
    gen = torch.Generator(sim.device).manual_seed(0)
    run = functools.partial(timed_steps, sim, gen)

    run(warmup)
    work = (sim.events, sim.rounds) if isinstance(sim, ServingSimulator) else (0, 0)
    rate = statistics.median(steps * batch / run(steps) for _ in range(repeats))
    row = {"profile": profile, "servers": ds.n_servers, "batch": batch, "max_in_flight": max_in_flight,
           "device": device, "decisions_per_s": rate, "ms_per_decision": 1e3 / rate, "ms_per_step": 1e3 * batch / rate}
    if isinstance(sim, ServingSimulator):  # where a serving step's time goes: its events, taken in rounds
        row |= {"events_per_decision": (sim.events - work[0]) / (repeats * steps * batch),
                "rounds_per_step": (sim.rounds - work[1]) / (repeats * steps)}
    return row


def profile_rows(ds: Dataset, batches: list[int], max_in_flight: int, devices: list[str], warmup: int, steps: int,
                 repeats: int) -> list[dict]:
    """Contention and serving rows at each batch, measured one after the other in this run; each serving
    row carries its cost per decision as a multiple of contention's at the same batch and device."""
    rows = []
    for dev in devices:
        for b in batches:
            pair = [profile_row(ds, name, b, max_in_flight, dev, warmup, steps, repeats)
                    for name in ("contention", "serving")]
            pair[1]["x_contention"] = pair[1]["ms_per_decision"] / pair[0]["ms_per_decision"]
            rows += pair
    return rows


def scalar_steps_per_s(ds: Dataset, steps: int, repeats: int) -> float:
    rng = random.Random(0)
    tasks = ds.tasks["train"]
    topology = ScalarTopology(ds)
    valid = [list((ds.instance_of[t] >= 0).nonzero()[0]) for t in range(len(ds.type_names))]

    def run() -> float:
        t0, done = time.perf_counter(), 0
        while done < steps:
            ep = ScalarEpisode(ds, "train", rng.randrange(len(tasks)), topology)
            while True:
                req = int(tasks.types[ep.task, ep.k])
                out = ep.step(int(rng.choice(valid[req])), [rng.random() for _ in range(4)])
                done += 1
                if out["done"]:
                    break
        return steps / (time.perf_counter() - t0)

    return statistics.median(run() for _ in range(repeats))


def gym_env_steps_per_s(ds: Dataset, profile: str, steps: int, repeats: int) -> float:
    """The single Gymnasium env stepped with random valid servers (picked as in the scalar run: from a
    per-type list, the type read off the observation's one-hot), resets included."""
    env = EdgeMoEEnv(ds, profile=profile)
    rng = random.Random(0)
    valid = [list((ds.instance_of[t] >= 0).nonzero()[0]) for t in range(len(ds.type_names))]

    def run() -> float:
        obs, _ = env.reset(seed=0)
        t0 = time.perf_counter()
        for _ in range(steps):
            req = int(obs["state"][7:].argmax())
            obs, _, terminated, truncated, _ = env.step(int(rng.choice(valid[req])))
            if terminated or truncated:
                obs, _ = env.reset()
        return steps / (time.perf_counter() - t0)

    return statistics.median(run() for _ in range(repeats))


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--servers", type=int, nargs="+", default=[500, 2000, 10000])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 256, 4096])
    p.add_argument("--devices", nargs="+", default=None, help="default: cpu, plus cuda when available")
    p.add_argument("--steps", type=int, default=200, help="timed steps per run (default 200)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per figure; the median is reported")
    p.add_argument("--scalar-steps", type=int, default=2000, help="steps per timed run of the scalar model")
    p.add_argument("--profile-batches", type=int, nargs="+", default=[8, 256, 4096],
                   help="worlds of the contention and serving rows (default 8 256 4096; none: --profile-batches 0)")
    p.add_argument("--max-in-flight", type=int, default=64, help="workflows per world in those rows (default 64)")
    p.add_argument("--profile-warmup", type=int, default=100, help="untimed steps before their timing (default 100)")
    p.add_argument("--profile-steps", type=int, default=20, help="timed steps per run of those rows (default 20)")
    add_json_flag(p)
    args = p.parse_args(argv)
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    torch.set_grad_enabled(False)

    datasets = {n: dataset(n) for n in args.servers}
    results = [{"servers": n, "batch": b, "device": dev,
                "steps_per_s": batched_steps_per_s(datasets[n], b, dev, args.steps, args.repeats)}
               for dev in devices for n in args.servers for b in args.batches]
    batches = [b for b in args.profile_batches if b > 0]
    queueing = profile_rows(datasets[args.servers[0]], batches, args.max_in_flight, devices, args.profile_warmup,
                            args.profile_steps, args.repeats)
    scalar = scalar_steps_per_s(datasets[args.servers[0]], args.scalar_steps, args.repeats)
    gym_envs = {profile: gym_env_steps_per_s(datasets[args.servers[0]], profile, steps, args.repeats)
                for profile, steps in (("paper", args.scalar_steps), ("contention", args.steps))}
    out = record("bench/env_throughput.py", argv, results + queueing, device=",".join(devices), scalar_steps_per_s=scalar,
                 scalar_servers=args.servers[0], gym_env_steps_per_s=gym_envs)
    emit(args.json, out)
    if args.json == "-":
        return out
    print(f"scalar model (one episode at a time, {args.servers[0]} servers): {scalar:,.0f} steps/s")
    for profile, rate in gym_envs.items():
        print(f"Gymnasium single env, {profile} profile: {rate:,.0f} steps/s ({rate / scalar:.2f} x scalar, "
              f"{1e6 / rate:.1f} us/step)")
    print(f"{'device':>6} {'servers':>7} {'batch':>6} {'steps/s':>12} {'x scalar':>9} {'us/call':>9}")
    for r in results:
        us = r["batch"] / r["steps_per_s"] * 1e6
        print(f"{r['device']:>6} {r['servers']:>7} {r['batch']:>6} {r['steps_per_s']:>12,.0f} "
              f"{r['steps_per_s'] / scalar:>9.1f} {us:>9.1f}")
    if queueing:
        print(f"\n{'device':>6} {'profile':>10} {'servers':>7} {'batch':>6} {'in flight':>9} {'decisions/s':>12} "
              f"{'ms/decision':>11} {'ms/step':>9} {'x contention':>12}")
    for r in queueing:
        ratio = f"{r['x_contention']:.2f}" if "x_contention" in r else ""
        print(f"{r['device']:>6} {r['profile']:>10} {r['servers']:>7} {r['batch']:>6} {r['max_in_flight']:>9} "
              f"{r['decisions_per_s']:>12,.0f} {r['ms_per_decision']:>11.4f} {r['ms_per_step']:>9.2f} {ratio:>12}")
    return out


if __name__ == "__main__":
    main()
