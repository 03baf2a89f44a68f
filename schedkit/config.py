"""YAML configuration with defaults, a user file on top, then `--set key=value` overrides.

Keys are nested; overrides use dots (`--set ppo.clip=0.1`) and YAML values (`--set regions=[A,B]`).
An unknown key is an error that lists the known ones, so a typo never silently does nothing.
`1e-3` reads as a number (plain PyYAML follows YAML 1.1 and would read the string '1e-3').
`validate` checks every value's type (that of its default) and range before anything is written.
"""
from __future__ import annotations

import copy
import math
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import yaml

from edgesim.inputs import InputError, MiB, read_text
from edgesim.profiles import PROFILES, ProfileError

MAX_YAML_BYTES = 4 * MiB  # a config or sweep file is a few KB

class ConfigError(ValueError):
    pass


class Loader(yaml.SafeLoader):
    """SafeLoader that also reads exponent floats without a dot (1e-3, 5E4) as numbers and refuses a
    key given twice in one mapping (plain YAML keeps the last, so a run would silently use it)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: SafeLoader reports it itself
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (a key may appear once per mapping)", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))

# every algorithm's config gets these keys. live_load: under `--profile contention`, whether the learned
# scheduler reads each server's live queue wait (schedkit/agent_base.py reads_live_load); no effect in paper
# `rollout` (contention training only): `continuing` runs the worlds on across epochs; `restart`
# restarts them, warm-up included, every epoch (the first protocol; configs saved before the key read so).
# `tensorboard`: auto, true or false (schedkit/tensorboard.py); a run records what `auto` became
# `train_env`: parameters of the run's profile that differ in the training simulator only, e.g.
# `--set train_env.trap_surcharge_scale=0`; the profile block stays the world the run is evaluated in
SHARED_DEFAULTS = {"keep_checkpoints": 3, "live_load": True, "rollout": "continuing", "tensorboard": "auto",
                   "train_env": {}}
OPEN_MAPPINGS = ("train_env",)  # mappings whose keys are not fixed by a default (validate checks them)
ROLLOUTS = ("continuing", "restart")
AUTO_OR_BOOL = ("tensorboard",)  # keys whose value is `auto` or a boolean


def yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=Loader)  # noqa: S506 - a SafeLoader subclass: no Python objects


def load_yaml(path: str | Path, what: str = "config file") -> dict:
    """A YAML mapping from a regular file of bounded size (edgesim/inputs.py), or a one-line ConfigError."""
    path = Path(path)
    try:
        data = yaml_load(read_text(path, what, max_bytes=MAX_YAML_BYTES)) or {}
    except InputError as e:
        raise ConfigError(str(e)) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(e).split())})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values at the top level")
    return data


def merge(base: dict, override: dict, where: str = "") -> dict:
    """Deep-merge `override` into a copy of `base`; keys must already exist in `base`."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if key not in out and where.rstrip(".") not in OPEN_MAPPINGS:
            raise ConfigError(f"unknown config key '{where}{key}'; known: {sorted(out)}")
        if isinstance(out.get(key), dict) and isinstance(value, dict):
            out[key] = merge(out[key], value, f"{where}{key}.")
        else:
            out[key] = value
    return out


def parse_set(items: list[str]) -> dict:
    """['ppo.clip=0.1', 'epochs=5'] -> {'ppo': {'clip': 0.1}, 'epochs': 5}."""
    tree: dict = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        node = tree
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: '{part}' is set twice, once as a value")
        try:
            node[parts[-1]] = yaml_load(raw)
        except yaml.YAMLError:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML") from None
    return tree


def algorithm_defaults(defaults_file: str | Path) -> dict:
    """Every key an algorithm's config has, with its default: the shared keys, its config.yaml, and every
    profile's parameter block (one set of defaults for every algorithm)."""
    cfg = SHARED_DEFAULTS | load_yaml(defaults_file)
    for name, profile in PROFILES.items():
        if profile.params_class is not None:
            cfg[name] = asdict(profile.params_class()) | cfg.get(name, {})
    return cfg


def resolve(defaults_file: str | Path, user_file: str | Path | None = None, sets: list[str] | None = None,
            flags: dict[str, Any] | None = None, choices: dict[str, tuple[str, ...]] | None = None) -> dict:
    """defaults <- user YAML <- explicit command-line flags <- --set overrides, then `validate`d
    (`choices`: the algorithm's own string options, e.g. TopoFreeRL's actor)."""
    cfg = algorithm_defaults(defaults_file)
    defaults = copy.deepcopy(cfg)
    if user_file:
        cfg = merge(cfg, load_yaml(user_file))
    if flags:
        cfg = merge(cfg, {k: v for k, v in flags.items() if v is not None})
    if sets:
        cfg = merge(cfg, parse_set(sets))
    return validate(cfg, defaults, choices)


# (low, high, low inclusive, high inclusive); None = unbounded. Keys absent from a config are skipped.
RANGES: dict[str, tuple[float | None, float | None, bool, bool]] = {
    "seed": (0, None, True, True), "epochs": (1, None, True, True), "episodes": (1, None, True, True),
    "checkpoint_every": (1, None, True, True), "keep_checkpoints": (1, None, True, True),
    "lr": (0, None, False, True), "weight_decay": (0, None, True, True), "minibatch": (1, None, True, True),
    "passes": (1, None, True, True), "max_grad_norm": (0, None, False, True), "val_fraction": (0, 1, False, False),
    "val_every": (1, None, True, True), "telemetry_queue_ms": (0, None, False, True), "shortlist": (0, None, True, True),
    "guidance.latency_weight": (0, 1, True, True),
    "ppo.gamma": (0, 1, False, True), "ppo.lam": (0, 1, True, True), "ppo.clip": (0, None, False, True),
    "ppo.update_epochs": (1, None, True, True), "ppo.minibatch": (1, None, True, True),
    "ppo.vf_coef": (0, None, True, True), "ppo.max_grad_norm": (0, None, False, True),
    "entropy.start": (0, None, True, True), "entropy.end": (0, None, True, True),
    "entropy.decay_frac": (0, 1, False, True), "dwa.start": (0, None, True, True), "dwa.frac_end": (0, 1, False, True),
    "fairness.weight": (0, None, True, True), "fairness.eps": (0, None, False, True),
    "fairness.window": (1, None, True, True),
    "model.candidates": (1, None, True, True), "model.d_model": (1, None, True, True),
    "model.heads": (1, None, True, True), "model.layers": (1, None, True, True),
}
WEIGHT_VECTORS = ("dwa.initial",)  # (latency, cost, switch) weight lists
# string keys with a fixed set of values (an algorithm's own choices come from its agent class)
CHOICES: dict[str, tuple[str, ...]] = {"rollout": ROLLOUTS}  # and `profile`: the registered profiles


def _type_error(key: str, want: str, value: Any) -> ConfigError:
    return ConfigError(f"config '{key}': expected {want}, got {value!r} ({type(value).__name__})")


def _check_type(key: str, value: Any, default: Any) -> None:
    """A value has the type of its default: numbers stay numbers, lists stay lists."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise _type_error(key, "true or false", value)
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(key, "an integer", value)
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise _type_error(key, "a finite number", value)
    elif isinstance(default, str):
        if not isinstance(value, str) or not value:
            raise _type_error(key, "a non-empty string", value)
    elif isinstance(default, list) and all(isinstance(v, float) for v in default):
        if not isinstance(value, list) or len(value) != len(default) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value):
            raise _type_error(key, f"a list of {len(default)} finite numbers, e.g. {default}", value)
    elif isinstance(default, list):
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            raise _type_error(key, "a non-empty list of names, e.g. [Server1_Trap]", value)


def _check_weights(key: str, value: list) -> list[float]:
    """Objective weights: non-negative floats that sum to 1 (the scalarisation is a convex combination)."""
    weights = [float(v) for v in value]
    if min(weights) < 0 or abs(sum(weights) - 1.0) > 1e-6:
        raise ConfigError(f"config '{key}': expected non-negative weights (latency, cost, switch) that sum to 1, "
                          f"got {value!r}")
    return weights


def _check_range(key: str, value: float) -> None:
    lo, hi, lo_in, hi_in = RANGES[key]
    if (lo is not None and (value < lo or (value == lo and not lo_in))) or \
            (hi is not None and (value > hi or (value == hi and not hi_in))):
        lo_s = "" if lo is None else f"{'>=' if lo_in else '>'} {lo:g}"
        hi_s = "" if hi is None else f"{'<=' if hi_in else '<'} {hi:g}"
        raise ConfigError(f"config '{key}': expected a value {' and '.join(s for s in (lo_s, hi_s) if s)}, "
                          f"got {value!r}")


def validate(cfg: dict, defaults: dict, choices: dict[str, tuple[str, ...]] | None = None) -> dict:
    """Check every key of `cfg` against the type of its default, RANGES and CHOICES; returns `cfg`.
    The contention block is checked by its own dataclass. Integers given for float keys become floats."""
    allowed = CHOICES | {"profile": tuple(PROFILES)} | (choices or {})

    def walk(node: dict, base: dict, where: str) -> None:
        for key, value in node.items():
            name, default = f"{where}{key}", base.get(key)
            if name == "train_env":
                _check_train_env(cfg, value)
                continue
            if name in PROFILES and PROFILES[name].params_class is not None:  # a profile's parameter block
                try:
                    PROFILES[name].parse(value)
                except ProfileError as e:
                    raise ConfigError(str(e)) from None
                continue
            if isinstance(default, dict):
                if not isinstance(value, dict):
                    raise _type_error(name, "a mapping", value)
                walk(value, default, f"{name}.")
                continue
            if name in AUTO_OR_BOOL:
                if value != "auto" and not isinstance(value, bool):
                    raise _type_error(name, "auto, true or false", value)
                continue
            if default is not None:
                _check_type(name, value, default)
            if isinstance(default, float) and isinstance(value, int):
                node[key] = value = float(value)
            if name in WEIGHT_VECTORS:
                node[key] = value = _check_weights(name, value)
            if name in RANGES and isinstance(value, (int, float)):
                _check_range(name, value)
            if name in allowed and value not in allowed[name]:
                raise ConfigError(f"config '{name}': expected one of {list(allowed[name])}, got {value!r}")

    walk(cfg, defaults, "")
    check_device(cfg.get("device", "cpu"))
    return cfg


def _check_train_env(cfg: dict, value: Any) -> None:
    """`train_env` holds parameters of the run's own profile (checked by its dataclass on top of the
    profile block); a profile without parameters takes none."""
    if not isinstance(value, dict):
        raise _type_error("train_env", "a mapping of the profile's parameters, e.g. {trap_surcharge_scale: 0}",
                          value)
    profile = PROFILES.get(cfg.get("profile", ""))
    if not value or profile is None:
        return
    if profile.params_class is None:
        raise ConfigError(f"config 'train_env': the {profile.name} profile has no parameters to change in training, "
                          f"got {value!r}")
    try:
        profile.parse(cfg.get(profile.name), value)
    except ProfileError as e:
        raise ConfigError(f"config 'train_env': {e}") from None


def check_device(name: Any) -> torch.device:
    """A device string torch understands (cpu, cuda, cuda:1, mps); anything else is a ConfigError."""
    try:
        return torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"device {name!r} is not a device: expected cpu, cuda or cuda:N") from None
