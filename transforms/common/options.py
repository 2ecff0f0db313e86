"""How a setting is declared, once, wherever it belongs (the run's core settings in pipelines/settings.py, a
backend's or an export's own in its module): its default, help, the stages whose output it shapes, its range.
Flags, YAML keys, `--help`, validation, fingerprints and the reference pages are all read from these fields.
Beam-free, so backends can declare their options where Beam is absent."""
from __future__ import annotations

import dataclasses
import math
import reprlib
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Stages = tuple[str, ...]  # the stages whose output a setting shapes; () = none (speed, place, retries)


@dataclass(frozen=True)
class Range:
    """A numeric setting's allowed values, as a rule a person reads and the check that applies it."""
    rule: str
    ok: Callable[[float], bool]


def above(low: float) -> Range:
    return Range(f"> {low:g}", lambda v: v > low)


def at_least(low: float) -> Range:
    return Range(f">= {low:g}", lambda v: v >= low)


def within(low: float, high: float) -> Range:
    """low < v <= high."""
    return Range(f"in ({low:g}, {high:g}]", lambda v: low < v <= high)


def setting(default: Any, shapes: Stages, help: str, *, range: Range | None = None,
            choices: Callable[[], tuple[str, ...]] | None = None, aliases: tuple[str, ...] = (),
            switchable: bool = True, group: str = "") -> Any:
    """shapes: which stages' output the setting changes (their fingerprints hold it, so changing it reruns exactly
    those and what reads them), or () for none. choices: the allowed values when not a Literal (a registry's
    names). switchable: an optional number that "none"/"off" switches off (else None = use the default). group:
    its section in `--help` (a backend's options get "<family>: <backend>")."""
    return dataclasses.field(default=default, metadata={
        "shapes": shapes, "help": help, "range": range, "choices": choices, "aliases": aliases,
        "switchable": switchable, "group": group})


OFF = ("none", "off")  # how an optional number is switched off from a flag or a config


def shown(value: Any) -> str:
    """A value for an error message, bounded however large it is (a YAML alias bomb expands to billions of items)."""
    bounded = reprlib.Repr()
    bounded.maxlevel, bounded.maxlist, bounded.maxtuple, bounded.maxstring, bounded.maxother = 2, 4, 4, 60, 60
    return bounded.repr(value)


def hint_of(cls: type, f: dataclasses.Field[Any]) -> Any:
    return typing.get_type_hints(cls)[f.name]


def is_optional_number(hint: Any) -> bool:
    return bool(hint == (float | None))


def is_path_list(hint: Any) -> bool:
    return bool(hint == tuple[str, ...])


def choices_of(f: dataclasses.Field[Any], hint: Any) -> tuple[str, ...]:
    """The allowed values of a setting: its Literal's, or its registry's names; () when free."""
    if f.metadata.get("choices"):
        return tuple(f.metadata["choices"]())
    return typing.get_args(hint) if typing.get_origin(hint) is typing.Literal else ()


def kind_of(hint: Any) -> str:
    """What a setting's value must be, in words."""
    if is_optional_number(hint):
        return "a number or none"
    if is_path_list(hint):
        return "a list of paths"
    return {int: "an integer", float: "a number", bool: "true or false"}.get(hint, "a string")


def typed(hint: Any, value: Any) -> bool:
    """Whether a value (from a flag or a YAML config) has the setting's type."""
    if is_optional_number(hint):
        return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if is_path_list(hint):
        return isinstance(value, tuple) and all(isinstance(v, str) for v in value)
    return isinstance(value, str)


def problems(obj: Any) -> list[str]:
    """Every declared field of a settings dataclass whose value has the wrong type, is not one of its choices,
    is not finite, or is out of its range: one phrase each, naming only that setting."""
    cls = type(obj)
    hints = typing.get_type_hints(cls)
    out: list[str] = []
    for f in dataclasses.fields(cls):
        value, hint = getattr(obj, f.name), hints[f.name]
        if not typed(hint, value):
            out.append(f"{f.name}={shown(value)} (expected {kind_of(hint)})")
            continue
        allowed = choices_of(f, hint)
        if allowed and value not in allowed:
            out.append(f"{f.name}={shown(value)} (choose from {', '.join(allowed)})")
        elif isinstance(value, float) and not math.isfinite(value):
            out.append(f"{f.name}={value!r} (must be a finite number)")
        elif f.metadata.get("range") and value is not None and not f.metadata["range"].ok(value):
            out.append(f"{f.name}={value!r} (must be {f.metadata['range'].rule})")
    return out


def filled(options_class: type, values: Any) -> Any:
    """A backend's or an export's own options, filled from the settings (or arguments) of the same names."""
    return options_class(**{f.name: getattr(values, f.name) for f in dataclasses.fields(options_class)})


@dataclass(frozen=True)
class NoOptions:
    """A backend or an export without settings of its own."""
