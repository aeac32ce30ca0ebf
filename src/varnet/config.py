"""Typed params: each stage reads only its own section of params.yaml into a dataclass.

Unknown keys are an error (a typo in params.yaml must not be silently ignored); missing keys
take the dataclass defaults.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, TypeVar

import yaml

from varnet.errors import VarnetError

T = TypeVar("T")
DEFAULT_PARAMS = Path("params.yaml")


def load_params(paths: str | os.PathLike | list[str | os.PathLike] = DEFAULT_PARAMS
                ) -> dict[str, Any]:
    """Read params.yaml, or several files merged in order: a later file's keys override.

    The overlays in configs/ (a real survey, the paper-scale GPU profile) hold only the keys
    they change, so ``--params params.yaml --params configs/surveys/eros1-lmc.yaml`` runs the
    pipeline on EROS-1 without editing params.yaml.
    """
    if isinstance(paths, (str, os.PathLike)):
        return _read_one(Path(paths))
    merged: dict[str, Any] = {}
    for path in paths:
        merged = deep_merge(merged, _read_one(Path(path)))
    return merged


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` merged over ``base``: mappings merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_one(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise VarnetError(f"{path}: params file not found "
                          "(run from the project root or pass --params)")
    try:
        params = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise VarnetError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(params, dict):
        raise VarnetError(f"{path}: expected a mapping of sections at the top level")
    return params


def section(cls: type[T], name: str, params: dict[str, Any] | None = None,
            path: str | os.PathLike = DEFAULT_PARAMS) -> T:
    """Build dataclass ``cls`` from section ``name`` of params.yaml (or of ``params``)."""
    params = load_params(path) if params is None else params
    return from_dict(cls, params.get(name) or {}, where=name)


def from_dict(cls: type[T], values: dict[str, Any], where: str = "") -> T:
    """Recursively build a dataclass from a mapping, rejecting unknown keys."""
    if not isinstance(values, dict):
        raise VarnetError(f"params {where}: expected a mapping, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise VarnetError(f"params {where}: unknown key(s) {unknown}; known: {sorted(fields)}")
    kwargs = {}
    hints = _resolved_hints(cls)
    for key, value in values.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = from_dict(hint, value, where=f"{where}.{key}")
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise VarnetError(f"params {where}: {exc}") from exc


def _resolved_hints(cls: type) -> dict[str, Any]:
    import typing

    return typing.get_type_hints(cls)


def as_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as a plain dict (for logging params to MLflow)."""
    return dataclasses.asdict(obj)
