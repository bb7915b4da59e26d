"""Scenario parameters: one TOML per scenario under ``synthetic/scenarios/``, overridable by name."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

SCENARIO_DIR = Path(__file__).parent / "scenarios"

# Keys whose values (or every value of a table) are probabilities.
_PROBABILITY_KEYS = ("share", "risk", "death_within_1y", "loss_to_followup_per_year", "attendance")


def scenario_names() -> list[str]:
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.toml"))


def load(name: str) -> dict[str, Any]:
    path = SCENARIO_DIR / f"{name}.toml"
    if not path.exists():
        raise ValueError(f"unknown scenario {name!r}; choose one of {', '.join(scenario_names())}")
    with path.open("rb") as fh:
        return tomllib.load(fh)["parameters"]


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _check_value(key: str, default: Any, value: Any) -> Any:
    """Return ``value`` coerced to the type of ``default`` or raise a ValueError naming ``key``."""
    if isinstance(default, dict):
        if _is_number(value):  # a scalar sets every entry (e.g. death_within_1y = 0 for every injury)
            return {k: _check_value(f"{key}.{k}", v, value) for k, v in default.items()}
        if not isinstance(value, dict):
            raise ValueError(f"override {key!r}: expected a table like {default!r}, got {value!r}")
        unknown = sorted(set(value) - set(default))
        if unknown:
            raise ValueError(f"override {key!r}: unknown entr{'y' if len(unknown) == 1 else 'ies'} "
                             f"{', '.join(map(repr, unknown))}; known: {', '.join(default)}")
        out = dict(default)
        out.update({k: _check_value(f"{key}.{k}", default[k], v) for k, v in value.items()})
        return out
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"override {key!r}: expected true/false, got {value!r}")
        return value
    if _is_number(default):
        if not _is_number(value):
            raise ValueError(f"override {key!r}: expected a number, got {value!r}")
        if any(p in key for p in _PROBABILITY_KEYS) and not 0 <= value <= 1:
            raise ValueError(f"override {key!r}: a probability must lie in [0, 1], got {value!r}")
        return type(default)(value) if isinstance(default, float) else value
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ValueError(f"override {key!r}: expected a string, got {value!r}")
        return value
    if isinstance(default, list):
        if not isinstance(value, (list, tuple)) or (default and len(value) != len(default)
                                                     and not key.startswith("site")):
            raise ValueError(f"override {key!r}: expected a list like {default!r}, got {value!r}")
        return list(value)
    raise ValueError(f"override {key!r}: unsupported value {value!r}")  # pragma: no cover


def resolve(name: str, overrides: dict[str, Any] | None) -> dict[str, Any]:
    """Scenario defaults with validated ``overrides``; unknown keys are an error naming the key."""
    params = copy.deepcopy(load(name))
    for key, value in (overrides or {}).items():
        if key not in params:
            raise ValueError(f"unknown parameter {key!r} for scenario {name!r}; "
                             f"known: {', '.join(sorted(params))}")
        params[key] = _check_value(key, params[key], value)
    for key, value in params.items():
        if "shares" in key and isinstance(value, (list, dict)):
            vals = list(value.values()) if isinstance(value, dict) else value
            if vals and all(_is_number(v) for v in vals) and abs(sum(vals) - 1) > 1e-9:
                raise ValueError(f"parameter {key!r}: shares must sum to 1, got {sum(vals):g}")
    if len(params["sites"]) != len(params["site_shares"]):
        raise ValueError("parameters 'sites' and 'site_shares' must have the same length")
    return params


def cache_key(name: str, params: dict[str, Any]) -> str:
    return name + json.dumps(params, sort_keys=True)
