"""Every knob of a run, declared once, where it belongs: the run's own and the images' in pipelines/run/settings.py,
each stage's in its folder (pipelines/<stage>/settings.py; the mine stage's are the mining rule,
transforms/mine/rule.py), each backend's own in its module (its `Options`, transforms/common/options.py);
composed into the one Settings dataclass the command line fills. Each stage is given only its own view of it
(`given`: the class its folder declares as GIVEN, with the options of the backends it chooses among). Each field
carries its type, choices, range, help and the stages whose output it shapes: pipelines/cli/arguments.py turns
them into flags and reads YAML configs, pipelines/run/fingerprints.py builds each stage's fingerprint from the
`shapes` declarations, pipelines/cli/reference.py writes the reference pages from them.
"""
from __future__ import annotations

import dataclasses
import importlib
import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from judgemine.pipelines.run.settings import RunSettings
from judgemine.pipelines.table import STAGE_NAMES
from judgemine.transforms.common.options import OFF, choices_of, problems, shown
from judgemine.transforms.common.registry import PluginError, Registry
from judgemine.transforms.embed.backends import EMBEDDERS
from judgemine.transforms.judge.backends import JUDGES

DEFAULT_CHUNK_SIZE = 4096
BACKEND_FAMILIES: tuple[Registry[Any], ...] = (EMBEDDERS, JUDGES)  # whose members' options are run settings
STAGE_SETTINGS: tuple[type, ...] = tuple(importlib.import_module(f"judgemine.pipelines.{name}.settings").SETTINGS
                                         for name in STAGE_NAMES)  # each stage's, from its folder, in run order


class _Whole:
    """What holds of the composed settings as a whole: the chunk size resolved, every value in its range, the
    judge prompt buildable."""

    def __post_init__(self: Any) -> None:
        if self.chunk_size == 0:  # resolved here, from nothing else: a later stage's setting or the device
            object.__setattr__(self, "chunk_size", DEFAULT_CHUNK_SIZE)  # must never re-chunk (rerun) ingest
        bad = problems(self)
        if not bad:
            try:
                _ = self.prompt
            except ValueError as e:
                bad.append(str(e))
        if bad:
            raise ValueError("invalid settings: " + ", ".join(bad))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]


def _backend_fields() -> list[tuple[str, Any, dataclasses.Field[Any]]]:
    """Every registered backend's own options as settings, in their section ("judge: vllm"), applying only
    while that backend is chosen."""
    out: dict[str, tuple[str, Any, dataclasses.Field[Any]]] = {}
    taken = {f.name for cls in (RunSettings, *STAGE_SETTINGS) for f in dataclasses.fields(cls)}
    for family in BACKEND_FAMILIES:
        for name, member in family.members().items():
            hints = typing.get_type_hints(member.Options)
            for f in dataclasses.fields(member.Options):
                if f.name in taken or f.name in out:
                    raise PluginError(f"the {family.kind} {name!r} declares the setting {f.name!r}, which another "
                                      "already has: a backend's options carry its own prefix")
                meta = {**f.metadata, "group": f"{family.section}: {name}", "backend": (family.setting, name)}
                out[f.name] = (f.name, hints[f.name], dataclasses.field(default=f.default, metadata=meta))
    return list(out.values())


if TYPE_CHECKING:  # a type checker sees the run's and the stages' settings; the backends' own are read through
    from judgemine.pipelines.embed.settings import EmbedSettings
    from judgemine.pipelines.index.settings import IndexSettings
    from judgemine.pipelines.ingest.settings import IngestSettings
    from judgemine.pipelines.judge.settings import JudgeSettings
    from judgemine.pipelines.retrieve.settings import RetrieveSettings
    from judgemine.transforms.mine.rule import MiningRule

    @dataclass(frozen=True)
    class Settings(RunSettings, IngestSettings, EmbedSettings, IndexSettings, RetrieveSettings,  # their `Options`
                   JudgeSettings, MiningRule, _Whole):
        pass
else:  # bases listed last stage first: a dataclass's fields come in reverse order of its bases
    Settings = dataclasses.make_dataclass("Settings", _backend_fields(),
                                          bases=(*reversed(STAGE_SETTINGS), RunSettings, _Whole), frozen=True)
    Settings.__module__ = __name__  # pickled by name, as a class written here would be
    Settings.__doc__ = "The run's settings: its own, every stage's and every registered backend's own options."

FIELDS = dataclasses.fields(Settings)
TYPES = typing.get_type_hints(Settings)
BY_NAME = {f.name: f for f in FIELDS}
LIST_FIELDS = {f.name for f in FIELDS if TYPES[f.name] == tuple[str, ...]}
OPTIONAL_FIELDS = {f.name for f in FIELDS if TYPES[f.name] == (float | None)}
ALIASES = {alias: f.name for f in FIELDS for alias in f.metadata["aliases"]}
__all__ = ["ALIASES", "BY_NAME", "DEFAULT_CHUNK_SIZE", "FIELDS", "LIST_FIELDS", "OFF", "OPTIONAL_FIELDS", "TYPES",
           "RunSettings", "Settings", "applies", "choices", "number", "shown", "given"]


def number(f: dataclasses.Field[Any]) -> Any:
    """float for an optional number (None = off), else the field's own type."""
    return float if f.name in OPTIONAL_FIELDS else TYPES[f.name]


def choices(f: dataclasses.Field[Any]) -> tuple[str, ...]:
    return choices_of(f, TYPES[f.name])


def applies(settings: Any, name: str) -> bool:
    """A backend's own setting matters only while that backend is chosen."""
    backend = BY_NAME[name].metadata.get("backend")
    return backend is None or getattr(settings, backend[0]) == backend[1]


def _with_options(cls: type) -> type:
    """A stage's GIVEN with the own options of every backend of a family it chooses among (a class with
    `judge_backend` gets every judge's), named in this module so a stage's settings pickle by reference."""
    own = {f.name for f in dataclasses.fields(cls)}
    extra = [entry for entry in _backend_fields() if entry[2].metadata["backend"][0] in own]
    made = dataclasses.make_dataclass(f"{cls.__name__}WithOptions", extra, bases=(cls,), frozen=True)
    made.__module__, made.__doc__ = __name__, cls.__doc__
    globals()[made.__name__] = made
    return made


GIVEN: dict[str, type] = {name: _with_options(importlib.import_module(f"judgemine.pipelines.{name}.settings").GIVEN)
                          for name in STAGE_NAMES}  # made at import, so a worker unpickles them by name


def given(stage: str, settings: Any) -> Any:
    """What stage `stage` is given of the run's settings: the class its folder declares as GIVEN (its own
    settings, the run's, and any other stage's it reads, named there), with the options of the backends it
    chooses among, filled from them; reading anything else of it is an AttributeError. A stage outside the table
    (a test's) gets the run's own."""
    cls = GIVEN.get(stage, RunSettings)
    return cls(**{f.name: getattr(settings, f.name) for f in dataclasses.fields(cls)})
