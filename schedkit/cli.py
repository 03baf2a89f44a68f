"""Command-line pieces every script shares: the common flags, argument types, threads, device
choice, dataset loading, and one-line exits for the errors a user can cause."""
from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import torch

from edgesim.dataset import Dataset, DatasetError, load_dataset
from edgesim.inputs import MAX_EPISODES, SEEDS, InputError, Range, ints, plain_name
from edgesim.paper import Flag, Profile
from edgesim.registry import PROFILES

from .config import RANGES, ConfigError, check_device
from .outputs import OutputError
from .paths import DATA
from .runs import RunError
from .simulators import params_or_exit

# One intra-op thread per process: the networks are small, so a second thread buys little on an
# idle machine and costs up to 10x on a busy one (README, "Threads"). --threads N to change it.
DEFAULT_THREADS = 1
MAX_THREADS = 1024  # torch threads: more than the cores of any machine this runs on
MAX_WORKERS = 256  # runs at once on one machine


def arg_type(allowed: Range) -> Callable[[str], Any]:
    """An argparse type reading one value of `allowed`; argparse's one-line error says the range."""
    def parse(text: str) -> int | float:
        try:
            return allowed.parse(text)
        except InputError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return parse


def config_arg(key: str) -> Callable[[str], Any]:
    """The argparse type of a flag that sets config key `key`: the key's own range (schedkit/config.py RANGES)."""
    return arg_type(RANGES[key])


def region_name(text: str) -> str:
    """argparse type: a region folder's name under the data root, never a path (it also names output folders)."""
    try:
        return plain_name(text, "")
    except InputError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def tag_name(text: str) -> str:
    """argparse type: an evaluation tag, none or a plain name (it ends folder and file names, e.g. contention_r16)."""
    return text and region_name(text)


seed_arg = arg_type(SEEDS)  # every script's seeds: what numpy and torch accept
episodes_arg = arg_type(ints(1, MAX_EPISODES))  # episodes of one evaluation
threads_arg = arg_type(ints(1, MAX_THREADS))
workers_arg = arg_type(ints(1, MAX_WORKERS))
epochs_arg = config_arg("epochs")
arrival_rate_arg = config_arg("contention.arrival_rate")  # the study scripts' lists of rates and scales
surcharge_scale_arg = config_arg("contention.trap_surcharge_scale")


def flag_type(profile: str, flag: Flag) -> Callable[[str], Any]:
    """How a profile's flag is read: text as given, a number within its config key's range."""
    key = f"{profile}.{flag.key}"
    if flag.kind != "text" and key not in RANGES:
        raise KeyError(f"{flag.name}: a numeric profile flag needs the range of '{key}' in schedkit/config.py RANGES")
    return str if flag.kind == "text" else config_arg(key)


def flag_range(profile: str, flag: Flag) -> Range | None:
    """The range of a numeric profile flag's config key (None for text)."""
    return None if flag.kind == "text" else RANGES[f"{profile}.{flag.key}"]


def device_name(text: str) -> str:
    """argparse type: a device string torch understands, of a GPU this machine has (schedkit/config.py)."""
    try:
        check_device(text)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def add_threads_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=threads_arg, default=DEFAULT_THREADS,
                   help=f"torch intra-op threads (default: {DEFAULT_THREADS}; more helps only large batches "
                        "on an idle machine)")


def add_timeline_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--timeline", action="store_true",
                   help="serving: also write timeline.csv, each world's mean running batch, KV occupancy and queued "
                        "requests at each of its decisions (total/plot_serving_timeline.py draws it)")


def set_threads(n: int) -> None:
    torch.set_num_threads(n)
    with contextlib.suppress(RuntimeError):  # settable once, before any parallel work
        torch.set_num_interop_threads(n)


def add_eval_flags(p: argparse.ArgumentParser) -> None:
    """Flags of the evaluation protocol, identical in every inference script."""
    p.add_argument("--data", default=str(DATA), help="data root holding region folders (default: the repository's data1)")
    p.add_argument("--region", nargs="+", type=region_name, default=["Server1_Trap"],
                   help="region folder(s) under --data to load together (default: Server1_Trap)")
    p.add_argument("--split", choices=["train", "test"], default="test", help="task split to evaluate (default: test)")
    p.add_argument("--episodes", type=episodes_arg, default=None,
                   help="episodes to run; tasks are dealt in file order, cycling (default: one per task of the "
                        "split; ten per task under --profile contention)")
    p.add_argument("--seed", type=seed_arg, default=0,
                   help="evaluation seed: fixes every channel and trap draw (default: 0)")
    add_profile_flags(p, unset="default: a checkpoint's own profile; paper for the heuristics")
    p.add_argument("--device", default="cpu", type=device_name, help="cpu or cuda (falls back to cpu with a warning)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an evaluation in --out that was made with other settings (default: refuse)")
    add_threads_flag(p)
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def add_profile_flags(p: argparse.ArgumentParser, default_profile: str | None = None,
                      unset: str = "config: profile") -> None:
    """--profile and every registered profile's own flags (edgesim/registry.py). `unset` says where the
    profile comes from when neither the flag nor `default_profile` is given."""
    shown = f"default: {default_profile}" if default_profile else unset
    p.add_argument("--profile", choices=list(PROFILES), default=default_profile, help=f"simulator dynamics ({shown})")
    shared: dict[str, list[tuple[str, Flag]]] = {}  # a flag several profiles have (--worlds) is one option
    for profile in PROFILES.values():
        for flag in profile.flags:
            shared.setdefault(flag.name, []).append((profile.name, flag))
    for name, owners in shared.items():
        (first, flag), others = owners[0], owners[1:]
        for other, same in others:
            if (same.key, same.kind) != (flag.key, flag.kind) or flag_range(other, same) != flag_range(first, flag):
                raise KeyError(f"{name}: profiles {first} and {other} give the flag different keys, kinds or ranges")
        also = "".join(f"; under --profile {other}: {other}.{same.key}" for other, same in others)
        p.add_argument(name, dest=flag.key, type=flag_type(first, flag), metavar=flag.metavar,
                       help=f"{first}: {flag.help}{also}")


def flags_by_profile(args: argparse.Namespace, chosen: str | None) -> dict[str, dict | None]:
    """Every profile's parameters given as flags, by profile (None for a profile with none given): the
    config blocks the flags override. A flag several profiles offer (--arrival-rate) goes to the `chosen`
    profile's block, or to the first offering it; `profile_flags` then refuses those of a profile not chosen."""
    owner: dict[str, str] = {}
    for name, profile in PROFILES.items():
        for f in profile.flags:
            if name == chosen or f.name not in owner:
                owner[f.name] = name
    return {name: {f.key: getattr(args, f.key) for f in profile.flags
                   if owner[f.name] == name and getattr(args, f.key, None) is not None} or None
            for name, profile in PROFILES.items()}


def profile_flags(args: argparse.Namespace, profile: Profile) -> dict:
    """The parameters of `profile` given on the command line (None where not given). A flag of another
    profile is an InputError: it would change nothing the script runs."""
    mine = {flag.name for flag in profile.flags}
    for other in PROFILES.values():
        given = [flag.name for flag in other.flags if flag.name not in mine and getattr(args, flag.key, None) is not None]
        if other.name != profile.name and given:
            raise InputError(f"{given[0]} is a {other.name} parameter, but the profile is {profile.name}; "
                             f"add --profile {other.name}")
    return {flag.key: getattr(args, flag.key) for flag in profile.flags}


def profile_params(args: argparse.Namespace, profile: Profile, block: dict | None = None) -> Any:
    """The parameters of `profile`: its config block (None: the defaults) with the flags given on top,
    checked. A flag of another profile or a bad value ends the script with one line."""
    try:
        flags = profile_flags(args, profile)
    except InputError as e:
        sys.exit(f"error: {e}")
    return params_or_exit(profile, block, flags)


def resolve_device(name: str) -> torch.device:
    """`cuda` without a GPU falls back to the CPU with one plain line on stderr instead of failing, so a
    command written for a GPU machine still runs on a laptop; callers record the device returned."""
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        print(f"warning: --device {name} requested but no CUDA GPU is available; running on cpu", file=sys.stderr)
        return torch.device("cpu")
    return dev


def load_or_exit(data: str | Path, regions: list[str]) -> Dataset:
    """Load a dataset; a bad dataset ends the script with its one-line message, not a traceback."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = load_dataset(data, regions)
    except DatasetError as e:
        sys.exit(f"error: {e}")
    for note in ds.warnings:
        print(f"warning: {note}", file=sys.stderr)
    return ds


ALWAYS_USER_ERRORS: tuple[type[BaseException], ...] = (InputError, DatasetError, ConfigError, OutputError, RunError)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM: the script stops at once and cleans up like for Ctrl-C."""


def _raise_interrupt(signum: int, frame: Any) -> NoReturn:
    raise Interrupted(signal.Signals(signum).name)


@dataclass
class Doing:
    """What a script is doing, for the line an OSError ends it with: the folder it writes (named when the
    error has no file name, e.g. a full disk during a write) and what to do next (e.g. how to resume)."""

    writing: Path | None = None
    then: Callable[[], str] | None = None


# errors of the disk or the folder, not of the script: the line says what to free or change
DISK_ERRORS = {errno.ENOSPC: "the disk is full; free space", errno.EDQUOT: "the disk quota is used up; free space",
               errno.EROFS: "the file system is read-only; choose a writable folder",
               errno.EACCES: "no permission to write there; choose a writable folder",
               errno.EFBIG: "the file is larger than this process may write (ulimit -f); raise the limit"}


def os_error_line(e: OSError, doing: Doing) -> str:
    """One line for an OSError: the path, the system's reason, what to do and, if set, how to continue."""
    path = e.filename or doing.writing or ("standard output" if e.errno == errno.EPIPE else None)
    line = f"{path}: {e.strerror or e}" if path else str(e.strerror or e)
    if e.errno == errno.EPIPE and not e.filename:
        line += " (the program reading the output closed it)"
    advice = [DISK_ERRORS[e.errno]] if e.errno in DISK_ERRORS else []
    with contextlib.suppress(OSError):
        advice += [doing.then()] if doing.then else []
    return "; ".join([line, *(a for a in advice if a)])


@contextlib.contextmanager
def user_errors(*kinds: type[BaseException]) -> Iterator[Doing]:
    """Errors a user causes (a bad input, config, checkpoint, output folder, the file system) end the
    script with one line; a bad input, an output folder that cannot be used and a folder another process
    writes to always do. The yielded `Doing` says what the script writes, for a disk error's line.
    SIGTERM is turned into KeyboardInterrupt, so `kill` cleans up like Ctrl-C."""
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    doing = Doing()
    try:
        yield doing
        sys.stdout.flush()  # a reader that closed the pipe shows here, as one line, not at interpreter exit
    except ALWAYS_USER_ERRORS + kinds as e:
        sys.exit(f"error: {e}")
    except OSError as e:  # disk full, read-only folder, a file where a folder should be
        if e.errno == errno.EPIPE:
            _drop_stdout()
        sys.exit(f"error: {os_error_line(e, doing)}")
    except KeyboardInterrupt:  # training handles its own (it keeps a checkpoint to resume from)
        exit_interrupted("stopped before the end; every file written so far is whole (files are written "
                         "atomically), the rest were not written: run the same command again")
    finally:
        signal.signal(signal.SIGTERM, previous)


def _drop_stdout() -> None:
    """Nothing more can reach a closed pipe: point standard output at /dev/null, so the exit's own flush does
    not fail again."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


@contextlib.contextmanager
def closed_output_is_one_line() -> Iterator[None]:
    """For a driver that handles its own signals and errors (total/sweep.py, total/reproduce.py): a reader that
    closes standard output early (`| head`) ends it with one line, not a traceback."""
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError as e:
        _drop_stdout()
        sys.exit(f"error: {os_error_line(e, Doing())}")


def exit_interrupted(message: str) -> NoReturn:
    print(f"\ninterrupted: {message}", file=sys.stderr)
    sys.exit(130)
