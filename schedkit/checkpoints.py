"""Reading a checkpoint file without running code, and checking every field before anything uses it.

Reading: the file must be a regular file of bounded size and a zip archive whose records are stored
uncompressed, as `torch.save` writes them (a compressed record could expand without bound). Its
pickle is read by torch's weights-only unpickler, which builds tensors and plain values and refuses
every other Python global, so reading a checkpoint never runs code from it. The numpy arrays and
scalars that checkpoints of format 1 held are read too, through stand-ins that only rebuild numeric
ones, so tools/convert_checkpoint.py reads old checkpoints under the same rule.

Checking: every value is a tensor or a plain value, within bounds (no tensor may be a view that
repeats its stored data: a few bytes on disk that would fill the memory once copied); then each
field has the type and range the toolkit writes, and the config passes the command line's own checks
(schedkit/config.py `validate`, with its algorithm's defaults and choices). A bad file is one
CheckpointError naming the file, the field and what was expected.
"""
from __future__ import annotations

import math
import pickle
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import torch

from edgesim.inputs import MAX_INPUT_BYTES, InputError, integer, number, plain_name, regular_file

from .agent_base import MaskedAgent
from .config import OPEN_MAPPINGS, ConfigError, algorithm_defaults, merge, upgrade, validate
from .paths import REPO
from .registry import SCHEDULERS, current_name, learned

CHECKPOINT_FORMAT = 2  # 1: before weights-only loading (numpy values inside); convert with tools/convert_checkpoint.py
CONVERTER = "tools/convert_checkpoint.py"

MAX_CHECKPOINT_BYTES = MAX_INPUT_BYTES
MAX_VALUES = 1_000_000  # plain values besides tensors: a checkpoint of a 100k-server dataset holds ~100k
MAX_DEPTH = 16  # nesting of dicts and lists: the optimizer state is the deepest, at 4
MAX_STRING = 4096  # characters of one string (a path in the config is the longest)
MAX_CONFIG_VALUES = 1000  # a resolved config holds ~60
REQUIRED = ("model", "config", "dataset", "algo", "epoch", "dwa")
WEIGHT_SUM_TOLERANCE = 1e-6


class CheckpointError(InputError):
    """A checkpoint that cannot be used: the message names the file, the field and what was expected."""


class Checkpoint(TypedDict, total=False):
    """What a checkpoint of this toolkit holds (weights only: tensors and plain values, so loading one
    never runs code). `check_checkpoint` checks every field."""

    format: int  # CHECKPOINT_FORMAT
    algo: str  # the registry name of the scheduler (schedkit/registry.py)
    epoch: int  # the next epoch to train: a resumed run starts there
    model: dict[str, torch.Tensor]  # the agent's state_dict
    config: dict[str, Any]  # the resolved config the run was trained with
    dataset: dict[str, Any]  # dataset_identity(): fingerprint, server_ids, type_names, regions, content
    dwa: dict[str, Any] | None  # {"weights": [3 floats], ...} for agents trained with DWA, None otherwise
    optimizer: dict[str, Any]
    prev_losses: list[float] | None  # DWA's previous epoch losses
    best: dict[str, Any]  # imitation training (STARK): the validation-selected epoch
    worlds: dict[str, torch.Tensor]  # training worlds that run on across epochs (rollout: continuing)
    carry: dict[str, torch.Tensor]  # decisions the next epoch trains on (serving, rollout: continuing; rollout.Carry)


FIELDS = tuple(Checkpoint.__annotations__)


# ----------------------------------------------------------------------------- reading

NUMERIC_KINDS = "biufc"  # bool, signed, unsigned, float, complex: what numeric arrays and scalars hold


def _numpy_array(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """numpy's `_reconstruct` as numpy's own pickles call it: an empty array that BUILD then fills
    (ndarray.__setstate__ checks the data's length against the shape)."""
    if subtype is not np.ndarray or shape != (0,) or dtype != b"b":
        raise pickle.UnpicklingError("a numpy array not pickled the way numpy pickles one")
    return np.ndarray.__new__(np.ndarray, (0,), np.dtype("b"))


def _numpy_dtype(spec: Any, align: Any = False, copy: Any = True) -> np.dtype:
    """numpy.dtype, for the numeric types only (no object, string or structured dtypes)."""
    if not isinstance(spec, str) or len(spec) > 4 or not re.fullmatch(r"[<>=|]?[a-zA-Z?]\d*", spec):
        raise pickle.UnpicklingError(f"numpy dtype {spec!r} is not a numeric type")
    dtype = np.dtype(spec, align=bool(align), copy=bool(copy))
    if dtype.kind not in NUMERIC_KINDS:
        raise pickle.UnpicklingError(f"numpy dtype {spec!r} is not a numeric type")
    return dtype


def _numpy_scalar(dtype: Any, data: Any) -> np.generic:
    """numpy's `scalar` for numeric scalars: exactly one value's bytes."""
    if not isinstance(dtype, np.dtype) or dtype.kind not in NUMERIC_KINDS or not isinstance(data, bytes) \
            or len(data) != dtype.itemsize:
        raise pickle.UnpicklingError("a numpy scalar that is not one numeric value")
    return np.frombuffer(data, dtype=dtype)[0]


def _numpy_globals() -> list[Any]:
    """What numpy's pickles of numeric arrays and scalars name, under numpy 1's and numpy 2's module names."""
    dtype_classes = {type(np.dtype(c)) for c in "?bBhHiIlLqQefdgFDG"}
    return [np.ndarray, *dtype_classes, (_numpy_dtype, "numpy.dtype"),
            *[(fn, f"{module}.{name}") for module in ("numpy.core.multiarray", "numpy._core.multiarray")
              for fn, name in ((_numpy_array, "_reconstruct"), (_numpy_scalar, "scalar"))]]


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """The object a checkpoint file holds, read without running any code from it."""
    try:
        path = regular_file(path, "checkpoint", MAX_CHECKPOINT_BYTES)
    except InputError as e:
        raise CheckpointError(str(e)) from None
    _check_archive(path)
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        if found:
            raise CheckpointError(
                f"{path}: refused: it refers to the Python global {found[1]}, which no checkpoint of this toolkit "
                "holds (loading it could run code); only tensors, plain values and numeric numpy values are read"
            ) from None
        reason = re.search(r"WeightsUnpickler error:\s*([^\n]+)", str(e))
        raise CheckpointError(f"{path}: refused: it holds objects other than tensors and plain values"
                              f"{f' ({_short(reason[1])})' if reason else ''}") from None
    except Exception as e:  # noqa: BLE001 - torch raises many types for a damaged file
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise CheckpointError(f"{path}: not a readable checkpoint (corrupted or truncated? {type(e).__name__}"
                              f"{': ' + _short(first) if first else ''})") from None


def _check_archive(path: Path) -> None:
    """A zip archive of stored (uncompressed) records of at most the file's size, as torch.save writes."""
    try:
        with zipfile.ZipFile(path) as archive:
            records = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise CheckpointError(f"{path}: not a readable checkpoint: expected the zip archive torch.save writes "
                              "(the file is empty, truncated or another kind of file)") from None
    if any(r.compress_type != zipfile.ZIP_STORED for r in records):
        raise CheckpointError(f"{path}: refused: it holds compressed records, which torch.save never writes (they "
                              "could expand without bound)")
    if sum(r.file_size for r in records) > path.stat().st_size:
        raise CheckpointError(f"{path}: not a readable checkpoint: its records claim more bytes than the file holds")


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


# ----------------------------------------------------------------------------- the shape of what was read

def field_name(where: tuple) -> str:
    """('model', 'actor.0.weight') -> field model['actor.0.weight']; ('epoch',) -> field 'epoch'."""
    if not where:
        return "the checkpoint"
    keys = [_short(repr(k), 60) for k in where]
    return f"field {keys[0]}" if len(keys) == 1 else f"field {where[0]}" + "".join(f"[{k}]" for k in keys[1:])


def survey(state: Any, path: Path) -> tuple | None:
    """Check that `state` holds only tensors and plain values within bounds; returns where the first
    numpy value lies (a checkpoint of format 1), or None. Iterative: nesting cannot exhaust the stack."""
    stack: list[tuple[Any, tuple]] = [(state, ())]
    count, numpy_at = 0, None
    while stack:
        value, where = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise CheckpointError(f"{path}: holds more than {MAX_VALUES:,} values besides its tensors; a checkpoint of "
                                  "this toolkit holds far fewer")
        if len(where) > MAX_DEPTH:
            raise CheckpointError(f"{path}: {field_name(where[:MAX_DEPTH])} nests deeper than {MAX_DEPTH} levels")
        if isinstance(value, torch.Tensor):
            _check_tensor(value, where, path)
        elif isinstance(value, (np.ndarray, np.generic)):
            numpy_at = where if numpy_at is None else numpy_at
        elif isinstance(value, dict):
            for k, v in value.items():
                if not _plain_key(k):
                    size = f" of {len(k):,} characters" if isinstance(k, str) else ""
                    raise CheckpointError(f"{path}: {field_name(where)} has a key that is not a name or an index "
                                          f"({type(k).__name__}{size})")
                stack.append((v, (*where, k)))
        elif isinstance(value, (list, tuple)):
            stack.extend((v, (*where, i)) for i, v in enumerate(value))
        elif isinstance(value, str):
            if len(value) > MAX_STRING:
                raise CheckpointError(f"{path}: {field_name(where)} is a text of {len(value):,} characters; expected "
                                      f"at most {MAX_STRING}")
        elif value is not None and not isinstance(value, (bool, int, float)):
            raise CheckpointError(f"{path}: {field_name(where)} is a {type(value).__name__}; a checkpoint holds only "
                                  "tensors, numbers, text, lists and mappings")
    return numpy_at


def _plain_key(key: Any) -> bool:
    """A state_dict name, config key or optimizer parameter index."""
    return (isinstance(key, str) and len(key) <= MAX_STRING) or (isinstance(key, int) and not isinstance(key, bool))


def _check_tensor(t: torch.Tensor, where: tuple, path: Path) -> None:
    """A dense tensor whose elements are all stored: a view that repeats its data (a zero stride, as
    from `expand`) could claim a terabyte that any copy or operation would allocate."""
    name = field_name(where)
    if t.layout != torch.strided or t.is_quantized or t.is_nested or t.is_meta:
        raise CheckpointError(f"{path}: {name} is a {t.layout} {'quantized ' if t.is_quantized else ''}tensor; "
                              "expected a dense tensor")
    stored = t.untyped_storage().nbytes()
    if t.numel() * t.element_size() > stored:
        raise CheckpointError(f"{path}: {name} is a view of shape {tuple(t.shape)} that repeats its {stored:,} stored "
                              "bytes; refused (copying it would need "
                              f"{t.numel() * t.element_size() / 2**30:,.1f} GiB)")


# ----------------------------------------------------------------------------- fields

def check_checkpoint(state: Any, path: str | Path, algo: str | None = None, finite: bool = True) -> dict[str, Any]:
    """Check a checkpoint's fields (see the module docstring); returns `state`, its config validated."""
    path = Path(path)
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a checkpoint of this toolkit (it holds a {type(state).__name__}, not a "
                              "mapping of fields)")
    numpy_at = survey(state, path)
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise CheckpointError(f"{path}: not a checkpoint of this toolkit (missing {missing})")
    _check_format(state.get("format"), numpy_at, path)
    unknown = [k for k in state if k not in FIELDS]
    if unknown:
        raise CheckpointError(f"{path}: unknown field {unknown[0]!r}; a checkpoint holds {list(FIELDS)}")
    if isinstance(state["algo"], str):
        state["algo"] = current_name(state["algo"])  # a checkpoint of an older version names it so
    name = state["algo"]
    if name not in learned():
        raise CheckpointError(f"{path}: field 'algo': expected a learned scheduler of this toolkit ({learned()}), "
                              f"got {_short(repr(name))}")
    if algo is not None and name != algo:
        raise CheckpointError(f"{path}: a {name} checkpoint, not {algo}; evaluate it with {name}'s own inference.py "
                              "(total/evaluate_all.py takes any)")
    try:
        cfg = state["config"] = check_config(state["config"], name, path)
        integer(state["epoch"], f"{path}: field 'epoch' (the next epoch to train; the config has {cfg['epochs']})",
                0, cfg["epochs"])
        integers = getattr(SCHEDULERS[name].load(), "integer_state", ())
        _check_weights(state["model"], ("model",), path, integers, finite)
        _check_dataset(state["dataset"], path)
        _check_dwa(state["dwa"], "dwa" in cfg, path)
        _check_losses(state.get("prev_losses"), path)
        if "best" in state:
            _check_best(state["best"], state["model"], state["epoch"], path, integers, finite)
        if "optimizer" in state:
            _check_optimizer_shape(state["optimizer"], path)
        for name in ("worlds", "carry"):
            if name in state:
                _check_tensors(state[name], (name,), path)
    except InputError as e:
        raise CheckpointError(str(e)) from None
    return state


def _check_format(fmt: Any, numpy_at: tuple | None, path: Path) -> None:
    exact = type(fmt) is int  # neither a bool nor a float that equals a format
    if fmt is None or (exact and fmt == 1) or (numpy_at is not None and fmt in (1, CHECKPOINT_FORMAT)):
        where = f" (numpy values in {field_name(numpy_at)})" if numpy_at is not None else ""
        raise CheckpointError(f"{path}: a checkpoint of an older version of this toolkit{where}; convert it once with: "
                              f"python {CONVERTER} {path}")
    if not exact:
        raise CheckpointError(f"{path}: field 'format': expected the integer {CHECKPOINT_FORMAT}, got "
                              f"{_short(repr(fmt))} ({type(fmt).__name__})")
    if fmt != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: format {fmt}, which this version does not read (it reads format "
                              f"{CHECKPOINT_FORMAT}{'; written by a newer version?' if fmt > CHECKPOINT_FORMAT else ''})")


def config_defaults(algo: str) -> dict[str, Any]:
    """The defaults a learned scheduler's config is checked against (its config.yaml, as train.py reads it)."""
    return algorithm_defaults(REPO / SCHEDULERS[algo].folder / "config.yaml")


def check_config(cfg: Any, algo: str, path: Path) -> dict[str, Any]:
    """A saved config, `upgrade`d (configs of older versions read as this one writes them), passes the command
    line's checks for its algorithm: known keys only, every key its readers need, each value of the type and
    range of its default. Returns the upgraded config."""
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{path}: field 'config': expected a mapping of config keys, got {type(cfg).__name__}")
    size = sum(1 for _ in _leaves(cfg, MAX_CONFIG_VALUES + 1))
    if size > MAX_CONFIG_VALUES:
        raise CheckpointError(f"{path}: field 'config' holds more than {MAX_CONFIG_VALUES} values; a config holds "
                              "about 60")
    defaults = config_defaults(algo)
    try:
        cfg = upgrade(cfg)
        if "algo" in cfg and cfg["algo"] != algo:  # before the keys: upgrade fills those of the algo named
            raise CheckpointError(f"{path}: config 'algo' is {_short(repr(cfg['algo']))}, but the checkpoint is a "
                                  f"{algo} one")
        merge(defaults, cfg)  # refuses unknown keys
        absent = next(_required_keys(defaults, cfg), None)
        if absent is not None:
            raise ConfigError(f"config lacks '{absent}', which every {algo} run records")
        validate(cfg, defaults, getattr(SCHEDULERS[algo].load(), "config_choices", {}))
    except ConfigError as e:
        raise CheckpointError(f"{path}: {e}") from None
    for region in cfg["regions"]:  # folder names under the data root
        plain_name(region, f"{path}: config 'regions'")
    return cfg


def _leaves(node: Any, limit: int) -> Iterator[Any]:
    """Up to `limit` values of a nested config (iterative)."""
    stack, n = [node], 0
    while stack and n < limit:
        value = stack.pop()
        n += 1
        yield value
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, (list, tuple)):
            stack.extend(value)


def _required_keys(defaults: dict, cfg: dict, where: str = "") -> Iterator[str]:
    """Dotted names of default keys absent from `cfg` (nested blocks that are present are looked into)."""
    for key, default in defaults.items():
        name = f"{where}{key}"
        if name in OPEN_MAPPINGS:
            continue
        if key not in cfg:
            yield name
        elif isinstance(default, dict) and isinstance(cfg[key], dict):
            yield from _required_keys(default, cfg[key], f"{name}.")


def _check_tensors(value: Any, where: tuple, path: Path) -> dict[str, torch.Tensor]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in value.items()):
        raise CheckpointError(f"{path}: {field_name(where)}: expected a mapping of names to tensors")
    return value


def _check_weights(value: Any, where: tuple, path: Path, integers: tuple[str, ...], finite: bool) -> None:
    """A state_dict of floating-point (and, with `finite`, finite) weights; integer tensors only under the
    names the agent declares (`integer_state`)."""
    weights = _check_tensors(value, where, path)
    if not weights:
        raise CheckpointError(f"{path}: {field_name(where)} holds no weights")
    for k, v in weights.items():
        integer_ok = k in integers and not v.is_floating_point() and not v.is_complex() and v.dtype != torch.bool
        if not v.is_floating_point() and not integer_ok:
            raise CheckpointError(f"{path}: {field_name((*where, k))} holds {v.dtype} values; expected floating-point "
                                  "weights")
    if finite:
        bad = [k for k, v in weights.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
        if bad:
            raise CheckpointError(f"{path}: holds non-finite weights (NaN or inf) in {bad[0]!r}"
                                  f"{f' and {len(bad) - 1} more' if len(bad) > 1 else ''}: the training "
                                  "diverged; use an earlier checkpoint of the run")


def _names(value: Any, what: str, plain: bool = False) -> None:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise InputError(f"{what}: expected a non-empty list of names, got a {type(value).__name__}")
    if plain:
        for v in value:
            plain_name(v, what)


def _check_dataset(ds: Any, path: Path) -> None:
    """The dataset identity (runs.dataset_identity): hashes and the server order it was trained on."""
    keys = ("fingerprint", "server_ids", "type_names", "regions", "content")
    if not isinstance(ds, dict) or any(k not in keys for k in ds) or not {"fingerprint", "server_ids", "regions"} <= set(ds):
        raise CheckpointError(f"{path}: field 'dataset': expected the dataset's identity {list(keys)}")
    for key in ("fingerprint", "content"):
        value = ds.get(key)
        if (key == "fingerprint" or value is not None) and not (
                isinstance(value, str) and re.fullmatch(r"[0-9a-f]{16}", value)):
            raise CheckpointError(f"{path}: field dataset[{key!r}]: expected 16 hexadecimal digits, got "
                                  f"{_short(repr(value))}")
    _names(ds["server_ids"], f"{path}: field dataset['server_ids']")
    _names(ds["regions"], f"{path}: field dataset['regions']", plain=True)
    if "type_names" in ds:
        _names(ds["type_names"], f"{path}: field dataset['type_names']")


def _numbers(value: Any, what: str, n: int) -> list[float]:
    if not isinstance(value, list) or len(value) != n:
        raise InputError(f"{what}: expected a list of {n} finite numbers, got {_short(repr(value))}")
    return [number(v, what) for v in value]


def _check_dwa(dwa: Any, expected: bool, path: Path) -> None:
    """DWA's state for agents whose config has a `dwa` block, None for the others (STARK)."""
    if dwa is None:
        if expected:
            raise CheckpointError(f"{path}: field 'dwa' is empty, but its config trains with DWA")
        return
    if not expected:
        raise CheckpointError(f"{path}: field 'dwa' holds DWA state, but its config has no DWA")
    if not isinstance(dwa, dict) or set(dwa) != {"weights", "moving_mean"}:
        raise CheckpointError(f"{path}: field 'dwa': expected {{weights: [3 numbers], moving_mean: [3 numbers] or "
                              "None}")
    weights = _numbers(dwa["weights"], f"{path}: field dwa['weights']", 3)
    if min(weights) < 0 or abs(sum(weights) - 1) > WEIGHT_SUM_TOLERANCE:
        raise CheckpointError(f"{path}: field dwa['weights']: expected non-negative weights (latency, cost, switch) "
                              f"that sum to 1, got {weights}")
    if dwa["moving_mean"] is not None:
        _numbers(dwa["moving_mean"], f"{path}: field dwa['moving_mean']", 3)


def _check_losses(losses: Any, path: Path) -> None:
    if losses is not None:
        _numbers(losses, f"{path}: field 'prev_losses'", 3)


def _check_best(best: Any, model: dict, epoch: int, path: Path, integers: tuple[str, ...], finite: bool) -> None:
    """Imitation training's validation-selected epoch: its reward, epoch and weights (or none yet), and the
    workflows its bounded validation left unfinished (absent in runs made before validations were bounded)."""
    if not isinstance(best, dict) or not {"reward", "epoch", "model"} <= set(best) <= {"reward", "epoch", "model",
                                                                                     "unfinished"}:
        raise CheckpointError(f"{path}: field 'best': expected {{reward, epoch, model[, unfinished]}}")
    if "unfinished" in best:
        integer(best["unfinished"], f"{path}: field best['unfinished'] (workflows)", 0, 1 << 40)
    reward = best["reward"]
    if not (reward == -math.inf and isinstance(reward, float)):
        number(reward, f"{path}: field best['reward']")
    integer(best["epoch"], f"{path}: field best['epoch'] (an epoch before {epoch}, or -1)", -1, max(epoch - 1, -1))
    if best["model"] is not None:
        _check_weights(best["model"], ("best", "model"), path, integers, finite)
        if {k: tuple(v.shape) for k, v in best["model"].items()} != {k: tuple(v.shape) for k, v in model.items()}:
            raise CheckpointError(f"{path}: field best['model'] does not have the names and shapes of field 'model'")


def _check_optimizer_shape(opt: Any, path: Path) -> None:
    groups = opt.get("param_groups") if isinstance(opt, dict) else None
    if not (isinstance(opt, dict) and set(opt) == {"state", "param_groups"} and isinstance(opt["state"], dict)
            and isinstance(groups, list) and groups
            and all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups)):
        raise CheckpointError(f"{path}: field 'optimizer': expected an optimizer's state_dict {{state, param_groups}}")


# ----------------------------------------------------------------------------- restoring into live objects

def restore_weights(agent: MaskedAgent, weights: dict[str, torch.Tensor], algo: str) -> None:
    """`agent.load_state_dict(weights)` after checking that every name, shape and kind of value fits (and
    the agent's own `state_problem`), so a checkpoint of another configuration is one CheckpointError,
    not a load_state_dict traceback or a silent cast."""
    own = agent.state_dict()
    missing, extra = [k for k in own if k not in weights], [k for k in weights if k not in own]
    problem = (f"it lacks {missing[0]!r}" + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
               if missing else f"it has {extra[0]!r}, which the agent has not" if extra else
               next((f"{k!r} has shape {tuple(weights[k].shape)}, the agent's {tuple(v.shape)}"
                     for k, v in own.items() if weights[k].shape != v.shape), None) or
               next((f"{k!r} holds {weights[k].dtype} values, the agent's {v.dtype}" for k, v in own.items()
                     if weights[k].is_floating_point() != v.is_floating_point()
                     or (not v.is_floating_point() and weights[k].dtype != v.dtype)), None) or
               agent.state_problem(weights))
    if problem:
        raise CheckpointError(f"its weights do not fit a {algo} agent built from its own config: {problem}")
    agent.load_state_dict(weights)


def restore_optimizer(optimizer: torch.optim.Optimizer, saved: Any) -> None:
    """`optimizer.load_state_dict(saved)` after checking it is the state of this very optimizer: the same
    parameter groups, settings (other than the scheduled learning rate) and per-parameter tensor shapes."""
    if saved is None:
        raise CheckpointError("it has no optimizer state, so it cannot be resumed")
    _check_optimizer_shape(saved, Path("it"))
    own = optimizer.state_dict()
    params = [p for g in optimizer.param_groups for p in g["params"]]
    if [g["params"] for g in saved["param_groups"]] != [g["params"] for g in own["param_groups"]]:
        raise CheckpointError(f"its optimizer state is for other parameters (it has {len(saved['param_groups'])} groups "
                              f"of {sum(len(g['params']) for g in saved['param_groups'])} in all; the agent's optimizer "
                              f"{len(own['param_groups'])} of {len(params)})")
    for mine, theirs in zip(own["param_groups"], saved["param_groups"]):
        for key, value in theirs.items():
            if key not in ("params", "lr", "initial_lr") and key in mine and not _same(value, mine[key]):
                raise CheckpointError(f"its optimizer setting {key!r} is {_short(repr(value))}, the run's optimizer "
                                      f"uses {mine[key]!r}")
    for index, entry in saved["state"].items():
        if not (isinstance(index, int) and 0 <= index < len(params) and isinstance(entry, dict)):
            raise CheckpointError(f"its optimizer state names parameter {_short(repr(index))}; the agent has "
                                  f"{len(params)}")
        for key, value in entry.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                continue  # a step count saved by torch before 1.12
            if not isinstance(value, torch.Tensor) or not value.is_floating_point() \
                    or not bool(torch.isfinite(value).all()):
                raise CheckpointError(f"its optimizer state {key!r} of parameter {index} is not a finite "
                                      "floating-point tensor")
            if value.dim() and value.shape != params[index].shape:
                raise CheckpointError(f"its optimizer state {key!r} of parameter {index} has shape "
                                      f"{tuple(value.shape)}, the parameter {tuple(params[index].shape)}")
    optimizer.load_state_dict(saved)


def _same(saved: Any, own: Any) -> bool:
    """Equal settings (a tensor-valued one never is: the optimizers here hold numbers and tuples)."""
    return not isinstance(saved, torch.Tensor) and not isinstance(own, torch.Tensor) and saved == own
