"""YAML configuration with defaults, a user file on top, then `--set key=value` overrides.

Keys are nested; overrides use dots (`--set ppo.clip=0.1`) and YAML values (`--set regions=[A,B]`).
An unknown key is an error that lists the known ones, so a typo never silently does nothing.
`1e-3` reads as a number (plain PyYAML follows YAML 1.1 and would read the string '1e-3').
`validate` checks every value's type (that of its default), range (RANGES: every numeric key has one) and
the cross-key checks (CROSS_CHECKS) before anything is written.
Defaults live in two places only: SHARED_DEFAULTS below and each algorithm's config.yaml (with every
profile's parameter block); a config saved by an older version is brought to this version's keys by
`upgrade` (OLDER_MEANINGS, REMOVED_VALUES), so code reads `cfg[key]` and never carries a default itself.
"""
from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import yaml

from edgesim.contention import RANGES as CONTENTION_RANGES
from edgesim.inputs import (
    SEEDS,
    InputError,
    MiB,
    Range,
    ints,
    plain_name,
    read_text,
    reals,
    shown,
)
from edgesim.paper import DEFAULT as DEFAULT_PROFILE
from edgesim.registry import PROFILES, ProfileError
from edgesim.serving import RANGES as SERVING_RANGES

from .registry import current_name

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

# every algorithm's config gets these keys. live_load: under `--profile contention` or `serving`, whether the
# learned scheduler reads the profile's live per-server inputs (schedkit/agent_base.py live_inputs: the queue
# wait; under serving also queue, batch, free KV, outstanding prompt tokens); no effect in paper
# `rollout` (contention and serving training): `continuing` runs the worlds on across epochs; `restart`
# restarts them, warm-up included, every epoch (the first protocol).
# `tensorboard`: auto, true or false (schedkit/tensorboard.py); a run records what `auto` became
# `train_env`: parameters of the run's profile that differ in the training simulator only, e.g.
# `--set train_env.trap_surcharge_scale=0`; the profile block stays the world the run is evaluated in
# `recipe`: the recipe `resolve` applied (the profile's name) or `none`; recorded, never set (see load_recipe)
SHARED_DEFAULTS = {"keep_checkpoints": 3, "live_load": True, "rollout": "continuing", "tensorboard": "auto",
                   "train_env": {}, "recipe": "none"}
NO_RECIPE = "none"

ALL = ("TopoFreeRL", "PPO", "PFAPPO", "STARK")  # the learned schedulers' registry names
RL = ("TopoFreeRL", "PPO", "PFAPPO")  # the PPO-trained ones (a `dwa` block)
BASELINES = ("PPO", "PFAPPO", "STARK")
# What a key meant in configs saved before it existed: (the algorithms whose configs have it, the dotted
# key, the value those runs had). `upgrade` fills each absent key with it, so readers need no default.
OLDER_MEANINGS: tuple[tuple[tuple[str, ...], str, Any], ...] = (
    (ALL, "keep_checkpoints", 3),  # runs kept their last 3 epoch checkpoints
    (ALL, "tensorboard", "auto"),  # logged to TensorBoard where the package was installed
    (ALL, "rollout", "restart"),  # the first contention protocol restarted the worlds every epoch
    (ALL, "train_env", {}),  # the training simulator was the evaluation world
    (ALL, "recipe", NO_RECIPE),  # no recipe applied
    (("TopoFreeRL",), "live_load", True),  # TopoFreeRL read live queue waits under contention
    (BASELINES, "live_load", False),  # the baselines' published inputs: no live queue waits
    (("PPO", "PFAPPO"), "load_logit", False),  # no per-server queue term in the logits
    (("STARK",), "val_every", 1),  # validated every epoch
    (("STARK",), "val_max_steps", 0),  # each validation ran until its workflows finished
    (RL, "dwa.initial", [0.45, 0.40, 0.15]),  # DWA started from these (latency, cost, switch) weights
    (("TopoFreeRL",), "actor", "dense"),  # one logit per server
    (("TopoFreeRL",), "shortlist", 0),  # every server scored
    (("TopoFreeRL",), "critic", "state"),  # the critic read the state alone
    (("TopoFreeRL",), "remaining_tokens", False),  # no expected remaining decode tokens among the inputs
    (("TopoFreeRL",), "se_gate", True),  # the squeeze-and-excitation gate was always there
    (("TopoFreeRL",), "telemetry_queue_ms", 1000.0),  # queue_norm = live queue wait / 1 s
    (("TopoFreeRL",), "guidance.enabled", True),  # the prior was always in the logits
    (("TopoFreeRL",), "guidance.prior", "telemetry"),  # the telemetry prior
    (("TopoFreeRL",), "guidance.latency_weight", 0.6),  # greedy's W (unused by the telemetry prior)
    (("TopoFreeRL",), "guidance.kl", 0.0),  # no KL penalty towards the prior
    (RL, "ppo.critic_warmup", 0),  # every epoch's update trained the policy
)
# Values older versions offered that this one does not: {key: {value: what to do}}; a saved config
# carrying one is refused. Keys whose only remaining value is the behaviour itself are dropped (DROPPED).
REMOVED_VALUES: dict[str, dict[Any, str]] = {
    "state": {"extended": "retrain with state: reference (the extended state measured no better, docs/guide.md)"},
    "telemetry_latency": {"link_mean": "retrain without the key (the telemetry charges the expected hop latency)"},
}
DROPPED = {"telemetry_latency": "expected_hop"}  # the key is gone; its remaining value is what the code does
OPEN_MAPPINGS = ("train_env",)  # mappings whose keys are not fixed by a default (validate checks them)
ROLLOUTS = ("continuing", "restart")
AUTO_OR_BOOL = ("tensorboard",)  # keys whose value is `auto` or a boolean


def yaml_load(text: str) -> Any:
    """YAML text to plain values (a SafeLoader subclass: no Python objects); nesting too deep for the
    parser's recursion is a YAMLError like any other malformed text."""
    try:
        return yaml.load(text, Loader=Loader)  # noqa: S506
    except RecursionError:
        raise yaml.YAMLError("nested too deeply to read") from None


def load_yaml(path: str | Path, what: str = "config file") -> dict:
    """A YAML mapping from a regular file of bounded size (edgesim/inputs.py), or a one-line ConfigError."""
    path = Path(path)
    try:
        data = yaml_load(read_text(path, what, max_bytes=MAX_YAML_BYTES)) or {}
    except InputError as e:
        raise ConfigError(str(e)) from None
    except (yaml.YAMLError, ValueError) as e:  # ValueError: an integer of more than 4300 digits
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
        if not all(parts):
            raise ConfigError(f"--set {item!r}: expected a dotted key such as ppo.clip before '=', got {key!r}")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: '{part}' is set twice, once as a value")
        try:
            node[parts[-1]] = yaml_load(raw)
        except (yaml.YAMLError, ValueError):  # ValueError: an integer of more than 4300 digits
            raise ConfigError(f"--set {shown(item)}: the value is not valid YAML") from None
    return tree


def upgrade(cfg: dict) -> dict:
    """A config saved by an older version (a checkpoint's, a run folder's config.yaml) as this version
    writes it: the scheduler's current name (registry RENAMED), every OLDER_MEANINGS key it lacks with the
    value its run had, every profile block it lacks with that profile's defaults, DROPPED keys removed.
    A REMOVED_VALUES value is one ConfigError naming the key, the value and what to do. Returns a new dict;
    anything it does not recognise is left for `validate` to report."""
    out = copy.deepcopy(cfg)
    algo = out.get("algo")
    if isinstance(algo, str):
        out["algo"] = algo = current_name(algo)
    for key, values in REMOVED_VALUES.items():
        value = out.get(key)
        if isinstance(value, str) and value in values:
            raise ConfigError(f"config '{key}: {value}' is no longer offered; {values[value]}")
    for key, value in DROPPED.items():
        if out.get(key) == value:
            del out[key]
    for algos, key, value in OLDER_MEANINGS:
        *blocks, leaf = key.split(".")
        node: Any = out
        for block in blocks:
            node = node.get(block) if isinstance(node, dict) else None
        if algo in algos and isinstance(node, dict) and leaf not in node:
            node[leaf] = copy.deepcopy(value)
    out.setdefault("profile", DEFAULT_PROFILE)  # the only world before profiles existed
    for name, profile in PROFILES.items():
        if profile.params_class is not None:
            out.setdefault(name, asdict(profile.params_class()))
    return out


def algorithm_defaults(defaults_file: str | Path) -> dict:
    """Every key an algorithm's config has, with its default: the shared keys, its config.yaml, and every
    profile's parameter block (one set of defaults for every algorithm)."""
    cfg = SHARED_DEFAULTS | load_yaml(defaults_file)
    for name, profile in PROFILES.items():
        if profile.params_class is not None:
            cfg[name] = asdict(profile.params_class()) | cfg.get(name, {})
    return cfg


def resolve(defaults_file: str | Path, user_file: str | Path | None = None, sets: list[str] | None = None,
            flags: dict[str, Any] | None = None, choices: dict[str, tuple[str, ...]] | None = None,
            recipe: bool = False) -> dict:
    """defaults <- the chosen profile's recipe (`recipe`: the algorithm's settings the study adopted, see
    load_recipe) <- user YAML <- explicit command-line flags <- --set overrides, then `validate`d
    (`choices`: the algorithm's own string options, e.g. TopoFreeRL's actor). `recipe` records which
    recipe applied, so a run's config.yaml says what it trained."""
    cfg = algorithm_defaults(defaults_file)
    defaults = copy.deepcopy(cfg)
    layers = [load_yaml(user_file)] if user_file else []
    layers += [{k: v for k, v in flags.items() if v is not None}] if flags else []
    layers += [parse_set(sets)] if sets else []
    without = _merged(cfg, layers)
    profile = without.get("profile")
    applied = load_recipe(defaults_file, profile, choices) if recipe and isinstance(profile, str) else {}
    name = profile if applied else NO_RECIPE
    if without["recipe"] not in (NO_RECIPE, name):
        raise ConfigError(f"config 'recipe' records the recipe train.py applied ({name}), got "
                          f"{shown(without['recipe'])}: the recipe is the profile's, or none with --no-recipe")
    cfg = _merged(cfg, [applied, *layers]) | {"recipe": name}
    cfg = validate(cfg, defaults, choices)
    _check_set_profiles(sets or [], cfg["profile"])
    return cfg


def _merged(cfg: dict, layers: list[dict]) -> dict:
    for layer in layers:
        cfg = merge(cfg, layer)
    return cfg


def recipe_path(defaults_file: str | Path, profile: str) -> Path:
    """Where an algorithm keeps its recipe for `profile`: beside its config.yaml, named after the profile."""
    return Path(defaults_file).parent / f"{profile}.yaml"


def load_recipe(defaults_file: str | Path, profile: str, choices: dict[str, tuple[str, ...]] | None = None) -> dict:
    """The settings a study adopted for this algorithm under `profile` (e.g. TopoFreeRL/contention.yaml), an
    overlay on its config.yaml; {} when it has none. One file, read by train.py and total/sweep.py alike, so
    the command line trains what the study reports. Checked as a config of that profile; an error names it."""
    path = recipe_path(defaults_file, profile)
    if profile not in PROFILES or not path.is_file():
        return {}
    recipe = load_yaml(path, "recipe file")
    defaults = algorithm_defaults(defaults_file)
    try:
        if "recipe" in recipe:
            raise ConfigError("'recipe' is recorded by train.py, not set by a recipe")
        validate(merge(defaults, recipe) | {"profile": profile}, copy.deepcopy(defaults), choices)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    return recipe


def recipe_sets(recipe: dict) -> list[str]:
    """A recipe as `--set KEY=VALUE` strings, in the file's order: what a sweep records and passes to train.py."""
    return [f"{key}={_set_text(value)}" for key, value in _flatten(recipe).items()]


def _set_text(value: Any) -> str:
    """A value as --set text that parses back to it (a string as itself unless YAML would read it otherwise)."""
    text = value if isinstance(value, str) else json.dumps(value)
    return text if yaml_load(text) == value else json.dumps(value)


def _check_set_profiles(sets: list[str], profile: str) -> None:
    """A `--set` of another profile's parameter would change nothing the run uses: refused, not ignored.
    (A config file's block of another profile is a default, kept for when that profile is chosen.)"""
    for item in sets:
        key = item.split("=", 1)[0].strip()
        block = key.split(".")[0]
        if block != profile and block in PROFILES and PROFILES[block].params_class is not None:
            raise ConfigError(f"--set {key} is a {block} parameter, but the profile is {profile}; "
                              f"add --profile {block}")


MAX_EPOCHS = 100_000  # 1000x the study's budget of 100: days of training even at a second an epoch
# per epoch: every decision's features are kept for the update, so 500x the study's 200 is about what
# fits in memory at 500 servers
MAX_EPISODES_PER_EPOCH = 100_000
MAX_BATCH = 1 << 20  # minibatch rows and windows: beyond any epoch's decisions (MAX_EPISODES_PER_EPOCH x steps)
MAX_PASSES = 1000  # optimiser passes over one epoch's data (the study uses 2-10)
LARGE = 1e6  # coefficients and norms: far beyond any sensible value, still finite after the arithmetic
# The range of every numeric config key, whichever way it is given (config file, --set, a flag, a sweep);
# schedkit/cli.py builds the flags' types from the same entries. A test checks that every numeric key of
# every algorithm's config.yaml and every profile block has one. Keys absent from a config are skipped.
RANGES: dict[str, Range] = {
    "seed": SEEDS, "epochs": ints(1, MAX_EPOCHS), "episodes": ints(1, MAX_EPISODES_PER_EPOCH),
    "checkpoint_every": ints(1, MAX_EPOCHS), "keep_checkpoints": ints(1, MAX_EPOCHS),
    # Adam and AdamW move each weight by about lr per step: above 1 no network learns, it only diverges
    "lr": reals(0, 1, lo_open=True), "weight_decay": reals(0, 1),
    "minibatch": ints(1, MAX_BATCH), "passes": ints(1, MAX_PASSES), "max_grad_norm": reals(0, LARGE, lo_open=True),
    "val_fraction": reals(0, 1, lo_open=True, hi_open=True), "val_every": ints(1, MAX_EPOCHS),
    "val_max_steps": ints(0, 1 << 40),  # 0: unbounded
    # queue waits beyond a day of simulated time mean no queue information at all
    "telemetry_queue_ms": reals(0, 86_400_000, lo_open=True),
    "shortlist": ints(0, 1 << 20),  # servers scored per decision; 0: all of them
    "guidance.latency_weight": reals(0, 1),
    # the prior's weight in the logits, alpha0 + alpha_slope * progress: logits are float32 and a weight of 1000
    # already makes the policy the prior's argmax; a negative weight would steer toward the prior's worst server
    "guidance.alpha0": reals(0, 1000), "guidance.alpha_slope": reals(0, 1000),
    # a KL weight of 10^6 leaves the policy gradient nothing: the policy is the prior's
    "guidance.kl": reals(0, LARGE),
    "ppo.gamma": reals(0, 1, lo_open=True), "ppo.lam": reals(0, 1),
    # the ratio is clipped to [1 - clip, 1 + clip], which must stay above 0
    "ppo.clip": reals(0, 1, lo_open=True, hi_open=True),
    "ppo.update_epochs": ints(1, MAX_PASSES), "ppo.minibatch": ints(1, MAX_BATCH),
    "ppo.critic_warmup": ints(0, MAX_EPOCHS),
    "ppo.vf_coef": reals(0, LARGE), "ppo.max_grad_norm": reals(0, LARGE, lo_open=True),
    # an entropy bonus of 100 is 10^4x the study's largest: the policy would only maximise entropy
    "entropy.start": reals(0, 100), "entropy.end": reals(0, 100), "entropy.decay_frac": reals(0, 1, lo_open=True),
    "dwa.start": ints(0, MAX_EPOCHS), "dwa.frac_end": reals(0, 1, lo_open=True),
    "fairness.weight": reals(0, LARGE), "fairness.eps": reals(0, LARGE, lo_open=True),
    "fairness.window": ints(1, MAX_BATCH),
    # STARK's transformer: sizes beyond these are out of reach of any machine the toolkit runs on
    "model.candidates": ints(1, 1 << 16), "model.d_model": ints(1, 1 << 14),
    "model.heads": ints(1, 1 << 10), "model.layers": ints(1, 256),
    # the contention block: its dataclass's own ranges (it also bounds worlds x max_in_flight)
    **{f"contention.{name}": allowed for name, allowed in CONTENTION_RANGES.items()},
    **{f"serving.{name}": allowed for name, allowed in SERVING_RANGES.items()},
}
# Checks across keys: (the keys, whether their values fit together, what is expected). Applied when every
# key is in the config.
CROSS_CHECKS: tuple[tuple[tuple[str, ...], Callable[..., bool], str], ...] = (
    (("model.d_model", "model.heads"), lambda d, h: d % h == 0,
     "heads must divide d_model (each attention head gets d_model / heads dimensions)"),
    (("ppo.critic_warmup", "epochs"), lambda warmup, epochs: warmup < epochs,
     "the critic's warm-up must leave the policy at least one epoch to train"),
)
WEIGHT_VECTORS = ("dwa.initial",)  # (latency, cost, switch) weight lists
NAME_LISTS = ("regions",)  # lists of names that become folder names: plain names, never paths
# string keys with a fixed set of values (an algorithm's own choices come from its agent class)
CHOICES: dict[str, tuple[str, ...]] = {"rollout": ROLLOUTS}  # and `profile`: the registered profiles


def _type_error(key: str, want: str, value: Any) -> ConfigError:
    return ConfigError(f"config '{key}': expected {want}, got {shown(value)} ({type(value).__name__})")


def _finite_number(value: Any) -> bool:
    """An int or float (not a bool) that is a finite float: an int beyond every float is not."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _check_type(key: str, value: Any, default: Any) -> None:
    """A value has the type of its default: numbers stay numbers, lists stay lists."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise _type_error(key, "true or false", value)
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(key, "an integer", value)
    elif isinstance(default, float):
        if not _finite_number(value):
            raise _type_error(key, "a finite number", value)
    elif isinstance(default, str):
        if not isinstance(value, str) or not value:
            raise _type_error(key, "a non-empty string", value)
    elif isinstance(default, list) and all(isinstance(v, float) for v in default):
        if not isinstance(value, list) or len(value) != len(default) or not all(
                _finite_number(v) for v in value):
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


def check_range(key: str, value: Any) -> int | float:
    """`value` of config key `key` within RANGES[key] (an integer given for a real key becomes a float)."""
    try:
        return RANGES[key].check(value, f"config '{key}'")
    except InputError as e:
        raise ConfigError(str(e)) from None


def check_block(name: str, block: Any) -> None:
    """RANGES and CROSS_CHECKS of a profile's parameter block, whichever door it came through (a config,
    --set, a flag, a checkpoint's config); the profile's dataclass checks the rest."""
    if isinstance(block, dict):
        flat = {f"{name}.{k}": v for k, v in block.items()}
        for key, value in flat.items():
            if key in RANGES and value is not None:
                try:
                    RANGES[key].check(value, key)
                except InputError as e:
                    raise ConfigError(str(e)) from None
        _cross_check(flat)


def _cross_check(flat: dict[str, Any]) -> None:
    """Only between numbers: a value of the wrong type is reported by its own key's check."""
    for keys, fits, expected in CROSS_CHECKS:
        if all(k in flat and _finite_number(flat[k]) for k in keys) and not fits(*(flat[k] for k in keys)):
            got = ", ".join(f"{k} {shown(flat[k])}" for k in keys)
            raise ConfigError(f"config {' and '.join(repr(k) for k in keys)}: {expected}; got {got}")


def _flatten(node: dict, where: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        out |= _flatten(value, f"{where}{key}.") if isinstance(value, dict) else {f"{where}{key}": value}
    return out


def validate(cfg: dict, defaults: dict, choices: dict[str, tuple[str, ...]] | None = None) -> dict:
    """Check every key of `cfg` against the type of its default, RANGES, CHOICES and CROSS_CHECKS; returns
    `cfg`. A profile's block is checked by its own dataclass too. Integers given for float keys become floats."""
    allowed = CHOICES | {"profile": tuple(PROFILES)} | (choices or {})

    def walk(node: dict, base: dict, where: str) -> None:
        for key, value in node.items():
            name, default = f"{where}{key}", base.get(key)
            if name == "train_env":
                _check_train_env(cfg, value)
                continue
            if name in PROFILES and PROFILES[name].params_class is not None:  # a profile's parameter block
                check_block(name, value)
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
            if name in RANGES:
                check_range(name, value)
            if name in NAME_LISTS:
                for item in value:
                    _check_name(name, item)
            if name in allowed and value not in allowed[name]:
                raise ConfigError(f"config '{name}': expected one of {list(allowed[name])}, got {shown(value)}")

    walk(cfg, defaults, "")
    _cross_check(_flatten(cfg))
    check_device(cfg["device"])
    return cfg


def _check_name(key: str, value: Any) -> None:
    try:
        plain_name(value, f"config '{key}'")
    except InputError as e:
        raise ConfigError(str(e)) from None


def _check_train_env(cfg: dict, value: Any) -> None:
    """`train_env` holds parameters of the run's own profile (checked by its dataclass on top of the
    profile block); a profile without parameters takes none."""
    if not isinstance(value, dict):
        raise _type_error("train_env", "a mapping of the profile's parameters, e.g. {trap_surcharge_scale: 0}",
                          value)
    name = cfg.get("profile")
    profile = PROFILES.get(name) if isinstance(name, str) else None  # a bad profile is reported as itself
    if not value or profile is None:
        return
    if profile.params_class is None:
        raise ConfigError(f"config 'train_env': the {profile.name} profile has no parameters to change in training, "
                          f"got {value!r}")
    try:
        block = cfg.get(profile.name)
        check_block(profile.name, (block if isinstance(block, dict) else {}) | value)
    except ConfigError as e:
        raise ConfigError(f"config 'train_env': {e}") from None
    try:
        profile.parse(cfg.get(profile.name), value)
    except ProfileError as e:
        raise ConfigError(f"config 'train_env': {e}") from None


def check_device(name: Any) -> torch.device:
    """A device string torch understands (cpu, cuda, cuda:1, mps) and, on a machine with CUDA, a GPU it has;
    anything else is a ConfigError. (`cuda` on a machine without one runs on the CPU with a warning.)"""
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"device {shown(name)} is not a device: expected cpu, cuda or cuda:N") from None
    count = torch.cuda.device_count() if dev.type == "cuda" and torch.cuda.is_available() else 0
    if count and dev.index is not None and dev.index >= count:
        raise ConfigError(f"device {name!r}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    return dev


RUN_ONLY_KEYS = ("device", "tensorboard")  # where a run computed and whether it logged: not how it trains


def differing_settings(configs: dict[str, dict]) -> dict[str, dict[str, Any]]:
    """{dotted key: {name: value}} for every training setting (all keys but RUN_ONLY_KEYS) whose value is
    not the same in all `configs`; a key one config lacks shows as None. Empty: the runs trained alike,
    so one may stand for the others."""
    flat = {name: _flatten(cfg) for name, cfg in configs.items()}
    keys = dict.fromkeys(k for f in flat.values() for k in f if k.split(".")[0] not in RUN_ONLY_KEYS)
    values = {k: {name: f.get(k) for name, f in flat.items()} for k in keys}
    return {k: v for k, v in values.items() if len({repr(x) for x in v.values()}) > 1}
