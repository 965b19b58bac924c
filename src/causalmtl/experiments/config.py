"""Typed experiment configs: dataclasses validated by OmegaConf structured configs.

Every experiment declares its configuration as a dataclass. The command line overrides it with
dotted keys (``--set model.width=64 methods=[stl,mtl]``) parsed by OmegaConf; an unknown key is
an error that lists the valid keys, a value of the wrong type is an error that names the key,
the value and the expected type. The resolved config is stored as YAML beside the results and
identified by a hash of its canonical JSON form.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

T = TypeVar("T")


class ConfigError(ValueError):
    """A bad override: unknown key, wrong type or malformed ``key=value``."""


def valid_keys(config: Any) -> list[str]:
    """All dotted leaf keys of a config dataclass (instance or class), in declaration order."""
    node = OmegaConf.structured(config)
    out: list[str] = []

    def walk(n: Any, prefix: str) -> None:
        for k in n:
            child = n._get_node(k)  # noqa: SLF001 - OmegaConf's node accessor
            key = f"{prefix}{k}"
            if isinstance(child, DictConfig) and child._is_missing() is False and not child._is_none():  # noqa: SLF001
                walk(child, key + ".")
            else:
                out.append(key)

    walk(node, "")
    return out


def free_form_keys(cls: Any) -> set[str]:
    """Top-level fields of a config dataclass declared as ``dict`` (e.g. ``method``): any
    sub-key may be set (``method.lambda_girm=10``); the experiment validates the names."""
    import typing

    out = set()
    hints = typing.get_type_hints(cls if isinstance(cls, type) else type(cls))
    for f in dataclasses.fields(cls):
        tp = hints.get(f.name, f.type)
        if tp is dict or typing.get_origin(tp) is dict:
            out.add(f.name)
    return out


def _split_override(item: str) -> tuple[str, str]:
    if "=" not in item:
        raise ConfigError(f"override {item!r} must have the form key=value (e.g. epochs=3)")
    key, value = item.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {item!r} has an empty key; expected key=value")
    return key, value


def _yaml_problem(exc: BaseException) -> str:
    """The first line of a YAML parser's complaint (``did not find expected ','``)."""
    problem = getattr(exc, "problem", None) or str(exc).strip().splitlines()[0]
    return str(problem)


def _dotlist(pairs: Sequence[tuple[str, str]]) -> Any:
    """``OmegaConf.from_dotlist`` with a one-line error naming the override whose value is not YAML."""
    import yaml

    try:
        return OmegaConf.from_dotlist([f"{k}={v}" for k, v in pairs])
    except (yaml.YAMLError, OmegaConfBaseException, ValueError) as exc:
        for k, v in pairs:
            try:
                OmegaConf.from_dotlist([f"{k}={v}"])
            except (yaml.YAMLError, OmegaConfBaseException, ValueError) as one:
                raise ConfigError(f"override {k}={v!r}: the value is not valid YAML ({_yaml_problem(one)}); "
                                  "quote lists and strings, e.g. --set 'methods=[stl,mtl]'") from None
        raise ConfigError(f"overrides {[f'{k}={v}' for k, v in pairs]} are not valid YAML "
                          f"({_yaml_problem(exc)})") from None


def read_yaml_mapping(path: str | os.PathLike[str], what: str) -> dict[str, Any]:
    """A YAML file holding a mapping (``{}`` when empty); a one-line ``ConfigError`` otherwise."""
    import yaml

    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{p}: not a valid {what} YAML file ({_yaml_problem(exc)}{where})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not a valid {what} YAML file (not text)") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{p}: a {what} YAML file must hold a mapping of keys, got {type(data).__name__}")
    return dict(data)


def build_config(
    cls: type[T],
    overrides: Sequence[str] = (),
    base: Mapping[str, Any] | None = None,
) -> T:
    """Instantiate the config dataclass ``cls`` with ``base`` values, then dotted overrides.

    Parameters
    ----------
    cls : a dataclass type whose defaults describe the experiment
    overrides : ``key=value`` strings, values in OmegaConf/YAML syntax (``a.b=3``,
        ``methods=[stl,mtl]``, ``name=null``)
    base : a nested mapping applied before ``overrides`` (e.g. a named preset)

    Raises
    ------
    ConfigError
        On an unknown key (the message lists the valid keys) or a value of the wrong type.
    """
    if not dataclasses.is_dataclass(cls):
        raise ConfigError(f"cls must be a dataclass type, got {cls!r}")
    schema = OmegaConf.structured(cls)
    keys = valid_keys(cls)
    free = free_form_keys(cls)
    layers: list[Any] = []
    if base:
        layers.append(OmegaConf.create(dict(base)))
    pairs = [_split_override(o) for o in overrides]
    for key, _ in pairs:
        if key.split(".")[0] in free and "." in key:
            continue
        if key not in keys and not any(k.startswith(key + ".") for k in keys):
            raise ConfigError(
                f"unknown config key {key!r} for {cls.__name__}; valid keys are: {', '.join(keys)}"
            )
    if pairs:
        layers.append(_dotlist(pairs))
    try:
        merged = OmegaConf.merge(schema, *layers)
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except ConfigKeyError as exc:
        key = getattr(exc, "full_key", None) or str(exc)
        raise ConfigError(
            f"unknown config key {key!r} for {cls.__name__}; valid keys are: {', '.join(keys)}"
        ) from None
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", "?")
        msg = str(exc).splitlines()[0]
        raise ConfigError(f"bad value for config key {key!r} of {cls.__name__}: {msg}") from None


def to_dict(config: Any) -> dict[str, Any]:
    """A plain nested dict (lists, not tuples) of a config dataclass instance."""
    return OmegaConf.to_container(OmegaConf.structured(config), resolve=True)  # type: ignore[return-value]


def to_yaml(config: Any) -> str:
    """The config as YAML text (what is stored beside the results)."""
    return OmegaConf.to_yaml(OmegaConf.structured(config))


def from_yaml(cls: type[T], text: str) -> T:
    """Read a config written by :func:`to_yaml` back into ``cls`` (validated)."""
    loaded = OmegaConf.create(text)
    return build_config(cls, base=OmegaConf.to_container(loaded))  # type: ignore[arg-type]


def config_hash(config: Any | Mapping[str, Any]) -> str:
    """A 12-hex-digit hash of the config's canonical JSON form (sorted keys)."""
    data = config if isinstance(config, Mapping) else to_dict(config)
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}``."""
    out: dict[str, Any] = {}
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Human-readable differences between two nested config dicts, one line per dotted key."""
    a, b = flatten(old), flatten(new)
    lines = []
    for key in sorted(set(a) | set(b)):
        if key not in a:
            lines.append(f"{key}: (absent) -> {b[key]!r}")
        elif key not in b:
            lines.append(f"{key}: {a[key]!r} -> (absent)")
        elif a[key] != b[key]:
            lines.append(f"{key}: {a[key]!r} -> {b[key]!r}")
    return lines


def parse_seeds(seeds: int | str | Iterable[int]) -> list[int]:
    """``3`` → ``[0, 1, 2]``; ``"0,5,7"`` → ``[0, 5, 7]``; a list is checked and kept."""
    if isinstance(seeds, bool):
        raise ConfigError(f"seeds must be a positive int or a list of ints, got {seeds!r}")
    if isinstance(seeds, int):
        if seeds < 1:
            raise ConfigError(f"seeds must be >= 1 (the number of seeds), got {seeds}")
        return list(range(seeds))
    if isinstance(seeds, str):
        try:
            if "," in seeds:
                return parse_seeds([int(s) for s in seeds.split(",") if s.strip()])
            return parse_seeds(int(seeds))
        except ValueError as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"seeds must be N or a comma list like 0,1,2, got {seeds!r}") from None
    out = [int(s) for s in seeds]
    if not out or len(set(out)) != len(out) or min(out) < 0:
        raise ConfigError(f"seeds must be distinct non-negative ints, got {out}")
    return out


# --- values that can never work ------------------------------------------------------------------
# Rules by the leaf name of a dotted key (the same name means the same thing in every experiment's
# config): (test, what is expected). A value failing its rule would make every run fail, so the
# whole config is checked before anything is queued (runner.plan_sweep).
def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


_INT_GE1 = (lambda v: _is_int(v) and v >= 1, "an int >= 1")
_INT_GE0 = (lambda v: _is_int(v) and v >= 0, "an int >= 0")
_PROB = (lambda v: _num(v) and 0 <= v <= 1, "a number in [0, 1]")
_POS = (lambda v: _num(v) and v > 0, "a finite number > 0")
_NONNEG = (lambda v: _num(v) and v >= 0, "a finite number >= 0")

#: Scalar keys (by leaf name) and their rule.
VALUE_RULES: dict[str, tuple[Any, str]] = {
    **{k: _INT_GE1 for k in (
        "epochs", "batch_size", "n_train", "n_valid", "n_test", "trials", "n_modules", "n_experts",
        "width", "dim", "n_bins", "n_unlabeled", "n_pool", "n_pairs", "n_tasks_simulated",
        "scaling_n", "top_words", "yeast_labels", "min_word_count", "max_title_words",
        "scaling_max_table_tasks")},
    **{k: _INT_GE0 for k in ("n_draws", "split_seed", "min_word_occurrences")},
    "patience": (lambda v: v is None or (_is_int(v) and v >= 1), "an int >= 1 (or null: no early stopping)"),
    **{k: _PROB for k in ("m", "m_train", "m_test")},
    **{k: _POS for k in ("lr", "tolerance", "logreg_c")},
    **{k: _NONNEG for k in ("pseudocount", "weight_decay")},
}

#: List keys (by leaf name) and the rule of each element.
ELEMENT_RULES: dict[str, tuple[Any, str]] = {
    "alphas": _PROB,
    "hidden": _INT_GE1,
    "k_values": _INT_GE1,
    "n_labels": _INT_GE1,
    "scaling_tasks": _INT_GE1,
    "n_tasks": (lambda v: _is_int(v) and v >= 2, "an int >= 2"),
}


def config_problems(config: Any) -> list[str]:
    """Every value of ``config`` that can never work, one ``key: value; expected …`` string each."""
    data = config if isinstance(config, Mapping) else to_dict(config)
    problems = []
    for key, value in flatten(data).items():
        leaf = key.rsplit(".", 1)[-1]
        if leaf in VALUE_RULES:
            ok, expected = VALUE_RULES[leaf]
            if not ok(value):
                problems.append(f"{key}={value!r} (expected {expected})")
        elif leaf in ELEMENT_RULES and isinstance(value, (list, tuple)):
            ok, expected = ELEMENT_RULES[leaf]
            bad = [v for v in value if not ok(v)]
            if bad:
                problems.append(f"{key}={list(value)!r} (each element must be {expected}; {bad[0]!r} is not)")
    return problems


def validate_config(config: Any) -> Any:
    """Refuse a config holding a value that can never work (every run would fail).

    Checks every dotted key whose leaf name has a rule in :data:`VALUE_RULES` or
    :data:`ELEMENT_RULES` (``train.epochs=-1``, ``train.batch_size=0``, ``data.n_train=0``,
    ``alphas=[0,2]``, …). Returns ``config``.

    Raises
    ------
    ConfigError
        One line naming every bad key, its value and what is expected.
    """
    problems = config_problems(config)
    if problems:
        name = type(config).__name__ if not isinstance(config, Mapping) else "config"
        raise ConfigError(f"invalid value(s) in {name}: " + "; ".join(problems)
                          + " (set them with --set KEY=VALUE)")
    return config


__all__ = [
    "ConfigError",
    "build_config",
    "config_hash",
    "config_problems",
    "diff",
    "flatten",
    "free_form_keys",
    "from_yaml",
    "parse_seeds",
    "read_yaml_mapping",
    "to_dict",
    "to_yaml",
    "valid_keys",
    "validate_config",
]
