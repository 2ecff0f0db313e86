"""The settings as command-line flags and Beam pipeline options, and YAML configs read into Settings.

Precedence: built-in default < YAML config (`--config`) < command-line flag."""
from __future__ import annotations

import argparse
import os
from typing import Any, Callable

import yaml
from apache_beam.options.pipeline_options import PipelineOptions

from judgemine.pipelines.settings import (
    ALIASES,
    FIELDS,
    LIST_FIELDS,
    OFF,
    OPTIONAL_FIELDS,
    TYPES,
    Settings,
    choices,
    number,
)

BY_NAME = {f.name: f for f in FIELDS}
PATHS = {"pairs", "corpus", "image_root", "embed_model", "judge_model", "judge_cache", "output"}


def _optional_float(text: str) -> Any:
    """A flag's value for an optional number: a float, or the word that switches it off."""
    return text.lower() if text.lower() in OFF else float(text)


class JudgemineOptions(PipelineOptions):
    """The Settings fields as Beam pipeline options (`--top-k`; `--top_k` also works, not shown in --help)."""

    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        add_settings(parser)


def add_settings(parser: argparse.ArgumentParser, groups: Callable[[str], bool] = lambda group: True,
                 with_defaults: bool = False) -> None:
    """The settings of the groups `groups` accepts, as flags under one argument group per settings group."""
    parser.add_argument("--config", default=None, help="YAML file of settings; flags override it")
    sections: dict[str, Any] = {}
    for f in FIELDS:
        group = f.metadata["group"]
        if not groups(group):
            continue
        if group not in sections:
            sections[group] = parser.add_argument_group(f"{group} settings")
        shown = f.metadata["help"] + (f" (default: {_shown(f.default)})" if with_defaults else "")
        kw: dict[str, Any] = {"dest": f.name, "default": None}
        if f.name in LIST_FIELDS:
            kw["action"] = "append"
        elif TYPES[f.name] is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif f.name in OPTIONAL_FIELDS:
            kw["type"] = _optional_float if f.metadata["switchable"] else float
        else:
            kw["type"] = TYPES[f.name] if TYPES[f.name] in (int, float) else str
            kw["choices"] = choices(f) or None
        sections[group].add_argument(f"--{f.name.replace('_', '-')}", help=shown, **kw)
        for hidden in ([f.name] if "_" in f.name else []) + [a.replace("_", "-") for a in f.metadata["aliases"]] + [
                a for a in f.metadata["aliases"] if "_" in a]:
            sections[group].add_argument(f"--{hidden}", help=argparse.SUPPRESS, **kw)


def _shown(default: Any) -> str:
    if isinstance(default, tuple) or default == "" or default is None:
        return "none"
    return str(default)


def load_settings(options: PipelineOptions) -> Settings:
    """Settings from the YAML file named by --config, overridden by any flag given."""
    view = options.view_as(JudgemineOptions)
    values: dict[str, Any] = {}
    if view.config:
        with open(view.config, encoding="utf-8") as f:
            loaded = yaml.safe_load(f) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{view.config}: a config is a mapping of settings (key: value), not a "
                             f"{type(loaded).__name__}")
        loaded = {ALIASES.get(k, k): v for k, v in loaded.items()}
        unknown = set(loaded) - {f.name for f in FIELDS}
        if unknown:
            raise ValueError(f"{view.config}: unknown settings {sorted(unknown)}")
        base = os.path.dirname(os.path.abspath(view.config))
        for k, v in loaded.items():
            values[k] = _relative_to(base, k, v)
    for f in FIELDS:
        v = getattr(view, f.name, None)
        if v is not None:
            values[f.name] = v
    for k in LIST_FIELDS:
        if k in values:
            v = values[k]
            values[k] = tuple([v] if isinstance(v, str) else v) if isinstance(v, (str, list, tuple)) else v
    for name in OPTIONAL_FIELDS:
        if isinstance(values.get(name), str) and values[name].lower() in OFF and BY_NAME[name].metadata["switchable"]:
            values[name] = None
    for f in FIELDS:  # YAML reads 1 where a float is meant
        if number(f) is float and isinstance(values.get(f.name), int) and not isinstance(values[f.name], bool):
            values[f.name] = float(values[f.name])
    return Settings(**values)


def _relative_to(base: str, key: str, value: Any) -> Any:
    """Paths in a config file are relative to the file, as a reader of the file expects."""
    if key not in PATHS or not value:
        return value

    def fix(p: Any) -> Any:
        if not isinstance(p, str):
            return p  # the settings' type check names it
        return p if ("://" in p or os.path.isabs(p)) else os.path.normpath(os.path.join(base, p))
    return [fix(p) for p in value] if isinstance(value, list) else fix(value)
