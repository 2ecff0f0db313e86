"""Declared fields (the run's settings, an export's options) as command-line flags, and YAML configs read into
Settings. Precedence: built-in default < YAML config (`--config`) < command-line flag."""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
import typing
from collections.abc import Callable, Iterable
from typing import Any

import yaml

from judgemine.pipelines.judge.settings import DEMO_JUDGE
from judgemine.pipelines.settings import (
    ALIASES,
    BY_NAME,
    FIELDS,
    LIST_FIELDS,
    OFF,
    OPTIONAL_FIELDS,
    Settings,
    number,
)
from judgemine.transforms.common.options import choices_of, is_optional_number, is_path_list

PATHS = {"pairs", "corpus", "image_root", "embed_model", "judge_model", "judge_cache", "output"}


def flag(name: str) -> str:
    return f"--{name.replace('_', '-')}"


def _optional_float(text: str) -> Any:
    """A flag's value for an optional number: a float, or the word that switches it off."""
    return text.lower() if text.lower() in OFF else float(text)


def add_fields(parser: argparse.ArgumentParser, fields: Iterable[dataclasses.Field[Any]], hints: dict[str, Any],
               section: Callable[[dataclasses.Field[Any]], str], shown: Callable[[str], bool] | None = None) -> None:
    """Each field as a flag (`--top-k`; `--top_k` and its aliases also work, not shown in --help), under one
    argument group per section (only the sections `shown` accepts are listed in --help, all are accepted);
    every flag defaults to None, so what was given is told from what was not."""
    groups: dict[str, Any] = {}
    for f in fields:
        title = section(f)
        if title not in groups:
            groups[title] = parser.add_argument_group(title)
        hint = hints[f.name]
        listed = shown is None or shown(f.metadata.get("group", ""))
        text = f.metadata["help"] + f" (default: {_shown(f.default)})" if listed else argparse.SUPPRESS
        kw: dict[str, Any] = {"dest": f.name, "default": None}
        if is_path_list(hint):
            kw["action"] = "append"
        elif hint is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif is_optional_number(hint):
            kw["type"] = _optional_float if f.metadata["switchable"] else float
        else:
            kw["type"] = hint if hint in (int, float) else str
            kw["choices"] = choices_of(f, hint) or None
        groups[title].add_argument(flag(f.name), help=text, **kw)
        hidden = ([f.name] if "_" in f.name else []) + [a.replace("_", "-") for a in f.metadata["aliases"]] + [
            a for a in f.metadata["aliases"] if "_" in a]
        for name in hidden:
            groups[title].add_argument(f"--{name}", help=argparse.SUPPRESS, **kw)


def add_settings(parser: argparse.ArgumentParser, shown: Callable[[str], bool] | None = None) -> None:
    """--config and every run setting, grouped as declared ("ingest settings", "judge: vllm settings"); `shown`:
    which groups --help lists (default: all)."""
    parser.add_argument("--config", default=None, help="YAML file of settings; flags override it")
    add_fields(parser, FIELDS, typing.get_type_hints(Settings), lambda f: f"{f.metadata['group']} settings", shown)


def setting_flags() -> list[str]:
    """One spelling of every setting's flag, for "did you mean" hints."""
    return [flag(f.name) for f in FIELDS]


def load_settings(args: argparse.Namespace) -> Settings:
    """Settings from the YAML file named by --config, overridden by any flag given."""
    values: dict[str, Any] = {}
    if args.config:
        with open(args.config, encoding="utf-8") as config:
            loaded = yaml.safe_load(config) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{args.config}: a config is a mapping of settings (key: value), not a "
                             f"{type(loaded).__name__}")
        loaded = {ALIASES.get(k, k): v for k, v in loaded.items()}
        unknown = sorted(set(loaded) - set(BY_NAME), key=str)
        if unknown:
            close = difflib.get_close_matches(str(unknown[0]), list(BY_NAME), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ValueError(f"{args.config}: unknown setting {unknown[0]!r}{hint}"
                             + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""))
        base = os.path.dirname(os.path.abspath(args.config))
        for k, v in loaded.items():
            values[k] = _relative_to(base, k, v)
    for f in FIELDS:
        v = getattr(args, f.name, None)
        if v is not None:
            values[f.name] = v
    for k in LIST_FIELDS:
        if k in values:
            v = values[k]
            values[k] = tuple([v] if isinstance(v, str) else v) if isinstance(v, (str, list, tuple)) else v
    for name in OPTIONAL_FIELDS:
        if isinstance(values.get(name), str) and values[name].lower() in OFF and BY_NAME[name].metadata["switchable"]:
            values[name] = None
    values.setdefault("judge_model", DEMO_JUDGE)  # the repository's, whatever the working directory
    for f in FIELDS:  # YAML reads 1 where a float is meant
        if number(f) is float and isinstance(values.get(f.name), int) and not isinstance(values[f.name], bool):
            values[f.name] = float(values[f.name])
    return Settings(**values)


def _shown(default: Any) -> str:
    if isinstance(default, tuple) or default == "" or default is None:
        return "none"
    return str(default)


def _relative_to(base: str, key: str, value: Any) -> Any:
    """Paths in a config file are relative to the file, as a reader of the file expects."""
    if key not in PATHS or not value:
        return value

    def fix(p: Any) -> Any:
        if not isinstance(p, str):
            return p  # the settings' type check names it
        return p if ("://" in p or os.path.isabs(p)) else os.path.normpath(os.path.join(base, p))
    return [fix(p) for p in value] if isinstance(value, list) else fix(value)
