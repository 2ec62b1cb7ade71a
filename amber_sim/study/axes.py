"""Sweep axes: ``--vary PATH=SPEC`` over any hardware-config field, and the product of all axes.

SPEC forms (docs/studies.md §Axes):

- a geometric range ``START:STOP:xFACTOR`` (400:3200:x2 → 400, 800, 1600, 3200),
- a linear range ``START:STOP:+STEP`` (256:1024:+256 → 256, 512, 768, 1024),
- a list ``V1,V2,...``; list-valued fields take bracketed lists: ``[2:4],[2:4,4:8,8:16]``.

Ranges apply to number fields only, so ``2:4`` is never mistaken for a range in a pattern list. Every
value is checked by the hardware-config loader itself (types, bounds, cross-field rules), so a sweep
point is exactly what the same YAML would give.

Two axes are not config fields but how the prefill is split over the config's system (docs/model.md §8):
``tp`` (chips of a tensor-parallel prefill, the main job's ``--tp``) and ``sp`` (sequence parallelism,
``--sp``; at ``tp`` = 1 there is nothing to split and it changes nothing).
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import math
import typing
from dataclasses import dataclass
from typing import Any

from amber_sim.errors import InputError
from amber_sim.hw.config import HardwareConfig, field_table, hardware_from_dict, hardware_to_dict

DEFAULT_MAX_POINTS = 10_000
_RANGE_EPSILON = 1e-9


@dataclass(frozen=True)
class Axis:
    path: str                     # dotted hardware-config path, e.g. memory.dram.bandwidth_gb_s
    values: tuple[Any, ...]       # YAML-shaped values (lists for list fields)

    @property
    def label(self) -> str:
        return self.path.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class SweepPoint:
    """One hardware point: the values of every axis, in axis order."""

    values: tuple[tuple[str, Any], ...]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.values)


PARALLEL_AXES = {"tp": "integer", "sp": "boolean"}  # split of the prefill, not config fields


def _field_types() -> dict[str, str]:
    """dotted path -> type name ('number', 'integer', 'string', 'boolean', 'list of string', 'mapping', ...)."""
    return {path: type_name.removesuffix(" or null") for path, type_name, _default, _doc in field_table()}


def leaf_paths() -> list[str]:
    return [path for path, kind in _field_types().items() if kind != "mapping"]


def check_path(path: str, flag: str = "--vary") -> str:
    """The field's type name; a path that does not exist suggests the closest ones."""
    if path in PARALLEL_AXES:
        return PARALLEL_AXES[path]
    types = _field_types()
    if path in types and types[path] != "mapping":
        return types[path]
    if path in types:
        inner = [leaf for leaf in leaf_paths() if leaf.startswith(path + ".")]
        raise InputError(flag, path, f"is a section, not a value; vary one of its fields: {', '.join(inner[:6])}")
    close = difflib.get_close_matches(path, [*PARALLEL_AXES, *leaf_paths()], n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else "see docs/hardware-config.md for every field"
    raise InputError(flag, path, f"no such hardware-config field; {hint}")


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside [brackets]."""
    items, depth, current = [], 0, []
    for char in text:
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        if char == "," and depth == 0:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    items.append("".join(current))
    return [item.strip() for item in items]


def _scalar(text: str) -> Any:
    """A command-line scalar: booleans, integers, floats, else the string itself (quotes stripped)."""
    text = text.strip().strip("'\"")
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "none"):
        return None
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def _list_value(text: str, flag: str, path: str) -> list[Any]:
    text = text.strip().strip("'\"")
    if not (text.startswith("[") and text.endswith("]")):
        raise InputError(flag, path, f"a list field takes bracketed lists such as [2:4] or [2:4,4:8]; got {text!r}")
    inner = text[1:-1].strip()
    return [] if not inner else [str(_scalar(item)) for item in _split_top_level(inner)]


def _number(text: str, flag: str, path: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(flag, path, f"expected a number in the range, got {text!r}") from None
    if not math.isfinite(value):
        raise InputError(flag, path, f"expected a finite number, got {text!r}")
    return value


def range_values(text: str, flag: str = "--vary", path: str = "") -> list[float]:
    """START:STOP:xFACTOR (geometric) or START:STOP:+STEP (linear), both ends included when reached."""
    parts = text.split(":")
    if len(parts) != 3 or not parts[2] or parts[2][0] not in "x+*":
        raise InputError(flag, path, f"expected START:STOP:xFACTOR or START:STOP:+STEP, got {text!r}")
    start, stop = _number(parts[0], flag, path), _number(parts[1], flag, path)
    step = _number(parts[2][1:], flag, path)
    geometric = parts[2][0] in "x*"
    if geometric and (step <= 1.0 or start <= 0):
        raise InputError(flag, path, f"a geometric range needs START > 0 and a factor > 1, got {text!r}")
    if not geometric and step <= 0:
        raise InputError(flag, path, f"a linear range needs a step > 0, got {text!r}")
    values, index = [], 0
    while True:
        value = start * step**index if geometric else start + step * index
        if value > stop * (1 + _RANGE_EPSILON) + _RANGE_EPSILON:
            break
        values.append(float(round(value, 9)))
        index += 1
        if len(values) > DEFAULT_MAX_POINTS * 10:
            break
    if not values:
        raise InputError(flag, path, f"range {text!r} yields no points (START {start:g} > STOP {stop:g})")
    return values


def _is_range(text: str) -> bool:
    parts = text.split(":")
    return len(parts) == 3 and bool(parts[2]) and parts[2][0] in "x+*"


def parse_axis(spec: str, flag: str = "--vary") -> Axis:
    """``PATH=SPEC`` -> Axis with YAML-shaped values (not yet checked against a base config)."""
    if "=" not in spec:
        raise InputError(flag, None, f"expected PATH=VALUES such as memory.dram.bandwidth_gb_s=400:3200:x2, got {spec!r}")
    path, text = (part.strip() for part in spec.split("=", 1))
    kind = check_path(path, flag)
    if not text:
        raise InputError(flag, path, "no values given")
    if kind.startswith("list of"):
        values: list[Any] = [_list_value(item, flag, path) for item in _split_top_level(text)]
    elif kind in ("number", "integer") and _is_range(text):
        values = range_values(text, flag, path)
        if kind == "integer":
            values = [int(round(value)) for value in values]
    else:
        values = [_scalar(item) for item in _split_top_level(text)]
    if path in PARALLEL_AXES:
        _check_parallel_values(path, values, flag)
    unique: list[Any] = []
    for value in values:
        if value not in unique:
            unique.append(value)
    return Axis(path=path, values=tuple(unique))


def _check_parallel_values(path: str, values: list[Any], flag: str) -> None:
    for value in values:
        if path == "tp" and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise InputError(flag, path, f"expected numbers of chips >= 1 such as 1,2,4,8, got {value!r}")
        if path == "sp" and not isinstance(value, bool):
            raise InputError(flag, path, f"expected false, true or false,true, got {value!r}")


def parallel_values(point: "SweepPoint") -> tuple[int, bool]:
    """(tp, sp) of a point: 1 and false unless its axes set them."""
    values = point.as_dict()
    return int(values.get("tp", 1)), bool(values.get("sp", False))


def parse_axes(specs: typing.Sequence[str], flag: str = "--vary") -> tuple[Axis, ...]:
    axes = tuple(parse_axis(spec, flag) for spec in specs)
    seen = set()
    for axis in axes:
        if axis.path in seen:
            raise InputError(flag, axis.path, "given twice; put all its values in one --vary")
        seen.add(axis.path)
    return axes


def parse_seq_lens(text: str | None, flag: str = "--seq-len") -> tuple[int, ...]:
    if not text:
        return ()
    values = []
    for item in _split_top_level(text):
        value = _scalar(item)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise InputError(flag, None, f"expected positive integers such as 512,2048,8192, got {item!r}")
        if value not in values:
            values.append(value)
    return tuple(values)


def point_count(axes: typing.Sequence[Axis], seq_lens: typing.Sequence[int] = ()) -> int:
    return math.prod(len(axis.values) for axis in axes) * max(1, len(seq_lens))


def check_point_count(axes: typing.Sequence[Axis], seq_lens: typing.Sequence[int], max_points: int) -> int:
    count = point_count(axes, seq_lens)
    if count > max_points:
        sizes = " × ".join(f"{len(axis.values)} ({axis.label})" for axis in axes)
        if seq_lens:
            sizes += f" × {len(seq_lens)} (seq-len)"
        raise InputError("--vary", None, f"the sweep has {count:,} points ({sizes}), more than the cap of "
                         f"{max_points:,}; narrow an axis or raise --max-points")
    return count


def sweep_points(axes: typing.Sequence[Axis]) -> list[SweepPoint]:
    """The product of all axes, first axis slowest (deterministic order)."""
    if not axes:
        return [SweepPoint(values=())]
    return [SweepPoint(values=tuple(zip((axis.path for axis in axes), combo)))
            for combo in itertools.product(*(axis.values for axis in axes))]


def _set_path(data: dict[str, Any], path: str, value: Any, where: str) -> None:
    keys = path.split(".")
    node = data
    for depth, key in enumerate(keys[:-1]):
        child = node.get(key)
        if child is None:
            section = ".".join(keys[:depth + 1])
            raise InputError("--vary", path, f"the base config {where} has no {section} section to vary; "
                             "add it to the YAML first")
        node = child
    node[keys[-1]] = value


def apply_point(base: HardwareConfig, point: SweepPoint) -> HardwareConfig:
    """The base config with the point's config values (not ``tp``/``sp``), validated exactly like a YAML file."""
    fields = [(path, value) for path, value in point.values if path not in PARALLEL_AXES]
    if not fields:
        return base
    data = hardware_to_dict(base)
    where = base.source_path or base.name
    for path, value in fields:
        _set_path(data, path, value, where)
    label = ",".join(f"{path}={value}" for path, value in fields)
    try:
        config = hardware_from_dict(data, f"--vary {label}")
    except InputError as error:
        raise InputError("--vary", error.field, f"{error.expected} (at the point {label})") from None
    return dataclasses.replace(config, source_path=base.source_path)


def check_axes_against(base: HardwareConfig, axes: typing.Sequence[Axis]) -> None:
    """Every value of every axis must load on the base config (type errors name the value)."""
    for axis in axes:
        for value in axis.values:
            apply_point(base, SweepPoint(values=((axis.path, value),)))
