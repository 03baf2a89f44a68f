"""Command-line pieces every script shares: the common flags, argument types, threads, device
choice, dataset loading, and one-line exits for the errors a user can cause."""
from __future__ import annotations

import argparse
import contextlib
import math
import signal
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import torch

from edgesim.dataset import Dataset, DatasetError, load_dataset
from edgesim.inputs import InputError
from edgesim.profiles import PROFILES, get_profile

from .config import ConfigError
from .outputs import OutputError
from .paths import DATA
from .runs import RunError

# One intra-op thread per process: the networks are small, so a second thread buys little on an
# idle machine and costs up to 10x on a busy one (README, "Threads"). --threads N to change it.
DEFAULT_THREADS = 1


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (0 is never silently read as "the default")."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def float_in(what: str, ok: Callable[[float], bool]) -> Callable[[str], float]:
    """An argparse type: a finite number for which `ok` holds; `what` names the range in the error."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and ok(value)):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value
    return parse


positive_float = float_in("a finite number > 0", lambda v: v > 0)
non_negative_float = float_in("a finite number >= 0", lambda v: v >= 0)
probability_below_one = float_in("a probability in [0, 1)", lambda v: 0 <= v < 1)
# how a profile's flag (edgesim.profile.Flag.kind) is read
FLAG_KINDS: dict[str, Callable[[str], Any]] = {"positive_float": positive_float, "positive_int": positive_int,
                                               "probability_below_one": probability_below_one,
                                               "non_negative_float": non_negative_float, "text": str}


def device_name(text: str) -> str:
    """argparse type: a device string torch understands."""
    try:
        torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda or cuda:N, got {text!r}") from None
    return text


def add_threads_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=positive_int, default=DEFAULT_THREADS,
                   help=f"torch intra-op threads (default: {DEFAULT_THREADS}; more helps only large batches "
                        "on an idle machine)")


def set_threads(n: int) -> None:
    torch.set_num_threads(n)
    with contextlib.suppress(RuntimeError):  # settable once, before any parallel work
        torch.set_num_interop_threads(n)


def add_eval_flags(p: argparse.ArgumentParser) -> None:
    """Flags of the evaluation protocol, identical in every inference script."""
    p.add_argument("--data", default=str(DATA), help="data root holding region folders (default: the repository's data1)")
    p.add_argument("--region", nargs="+", default=["Server1_Trap"],
                   help="region folder(s) under --data to load together (default: Server1_Trap)")
    p.add_argument("--split", choices=["train", "test"], default="test", help="task split to evaluate (default: test)")
    p.add_argument("--episodes", type=positive_int, default=None,
                   help="episodes to run; tasks are dealt in file order, cycling (default: one per task of the "
                        "split; ten per task under --profile contention)")
    p.add_argument("--seed", type=int, default=0, help="evaluation seed: fixes every channel and trap draw (default: 0)")
    add_profile_flags(p, unset="default: a checkpoint's own profile; paper for the heuristics")
    p.add_argument("--device", default="cpu", type=device_name, help="cpu or cuda (falls back to cpu with a warning)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an evaluation in --out that was made with other settings (default: refuse)")
    add_threads_flag(p)
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def add_profile_flags(p: argparse.ArgumentParser, default_profile: str | None = None,
                      unset: str = "config: profile") -> None:
    """--profile and every registered profile's own flags (edgesim/profiles.py). `unset` says where the
    profile comes from when neither the flag nor `default_profile` is given."""
    shown = f"default: {default_profile}" if default_profile else unset
    p.add_argument("--profile", choices=list(PROFILES), default=default_profile, help=f"simulator dynamics ({shown})")
    for profile in PROFILES.values():
        for flag in profile.flags:
            p.add_argument(flag.name, dest=flag.key, type=FLAG_KINDS[flag.kind], metavar=flag.metavar,
                           help=f"{profile.name}: {flag.help}")


def profile_flags(args: argparse.Namespace, profile: str) -> dict:
    """The parameters of `profile` given on the command line (None where not given)."""
    return {flag.key: getattr(args, flag.key) for flag in get_profile(profile).flags}


def resolve_device(name: str) -> torch.device:
    """`cuda` without a GPU falls back to the CPU with a warning instead of failing."""
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        warnings.warn("--device cuda requested but no CUDA GPU is available; running on cpu", stacklevel=2)
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


@contextlib.contextmanager
def user_errors(*kinds: type[BaseException]) -> Iterator[None]:
    """Errors a user causes (bad config, checkpoint, input file, output folder, file system) end the
    script with one line; a bad input file, an output folder that cannot be used and a folder another
    process writes to always do. SIGTERM is turned into KeyboardInterrupt, so `kill` cleans up like Ctrl-C."""
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    except ALWAYS_USER_ERRORS + kinds as e:
        sys.exit(f"error: {e}")
    except OSError as e:  # disk full, read-only folder, a file where a folder should be
        where = f"{e.filename}: " if e.filename else ""
        sys.exit(f"error: {where}{e.strerror or e}")
    finally:
        signal.signal(signal.SIGTERM, previous)


def exit_interrupted(message: str) -> NoReturn:
    print(f"\ninterrupted: {message}", file=sys.stderr)
    sys.exit(130)
