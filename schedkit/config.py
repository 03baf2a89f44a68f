"""YAML configuration with defaults, a user file on top, then `--set key=value` overrides.

Keys are nested; overrides use dots (`--set ppo.clip=0.1`) and YAML values (`--set regions=[A,B]`).
An unknown key is an error that lists the known ones, so a typo never silently does nothing.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from edgesim.contention import Contention


class ConfigError(ValueError):
    pass


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values at the top level")
    return data


def merge(base: dict, override: dict, where: str = "") -> dict:
    """Deep-merge `override` into a copy of `base`; keys must already exist in `base`."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if key not in out:
            raise ConfigError(f"unknown config key '{where}{key}'; known: {sorted(out)}")
        if isinstance(out[key], dict) and isinstance(value, dict):
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
        node[parts[-1]] = yaml.safe_load(raw)
    return tree


def resolve(defaults_file: str | Path, user_file: str | Path | None = None, sets: list[str] | None = None,
            flags: dict[str, Any] | None = None) -> dict:
    """defaults <- user YAML <- explicit command-line flags <- --set overrides."""
    cfg = load_yaml(defaults_file)
    cfg["contention"] = Contention().as_dict() | cfg.get("contention", {})  # one set of defaults for every algorithm
    if user_file:
        cfg = merge(cfg, load_yaml(user_file))
    if flags:
        cfg = merge(cfg, {k: v for k, v in flags.items() if v is not None})
    if sets:
        cfg = merge(cfg, parse_set(sets))
    return cfg
