"""Every path of a run's output folder, named in this one module: the stages' folders and records, the parts
inside them, the run's own outputs (shards, rejects, manifest), what is made from a run (report, export,
derived notes), the judge's score cache, the lock and the ownership marker. No other module joins these names,
so the layout changes here or nowhere (tests/test_layout.py greps for the names).

A run root may be a local path or an object-store URL; a root of "" gives the paths relative to the run, as a
stage's record lists its files.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from judgemine.schemas.io import part_name

Side = Literal["queries", "candidates"]  # a stage's two folders of records: one row per query, per candidate
SIDES: tuple[Side, ...] = ("queries", "candidates")
Folder = Literal["queries", "candidates", "images", "rejects"]  # the record folders a stage writes
_STAGES = "stages"
_RECORD = "stage.json"
_SHARDS = "shards"
_REJECTS = "rejects"
_MANIFEST = "manifest.json"
_REPORT = "report"
_EXPORT = "export"
_DERIVED = "derived"
_CACHE = "cache"
_LOCK = ".judgemine.lock"
_MARKER = ".judgemine-run"
_INDEX_SHARD = "shard-{:05d}"
_SIDED = ("ingest", "embed")  # the stages whose parts sit in queries/ and candidates/
COMMITTED = (_STAGES, _SHARDS, _REJECTS, _REPORT, _CACHE, _MANIFEST)  # top-level names a run writes and reads


@dataclass(frozen=True)
class StageFolder:
    """One stage's folder, `stages/<name>/`: its record and the record folders it publishes."""
    path: str

    @property
    def record(self) -> str:
        return os.path.join(self.path, _RECORD)

    def folder(self, name: Folder) -> str:
        return os.path.join(self.path, name)

    def part(self, folder: Folder, index: int) -> str:
        """Part `index` of one of its folders (query chunk i is part i of every stage)."""
        return os.path.join(self.path, folder, part_name(index))

    def own_part(self, index: int) -> str:
        """Part `index` of a stage that writes its parts at the top of its folder (retrieve, judge)."""
        return os.path.join(self.path, part_name(index))

    def query_part(self, index: int) -> str:
        """Query chunk `index` of this stage: in its queries/ folder for the stages with two sides (ingest, embed),
        at the top of its folder for the others."""
        name = os.path.basename(self.path.rstrip("/"))
        return self.part("queries", index) if name in _SIDED else self.own_part(index)

    def index_shard(self, shard: int) -> str:
        """The index stage's folder of one FAISS index shard."""
        return os.path.join(self.path, _INDEX_SHARD.format(shard))


@dataclass(frozen=True)
class RunLayout:
    """Where everything of the run at `root` lives."""
    root: str

    @property
    def stages(self) -> str:
        return os.path.join(self.root, _STAGES)

    def stage(self, name: str) -> StageFolder:
        return StageFolder(os.path.join(self.root, _STAGES, name))

    def published(self, name: str) -> str:
        """A folder a stage publishes at the top of the run (mine: shards)."""
        return os.path.join(self.root, name)

    @property
    def shards(self) -> str:
        return os.path.join(self.root, _SHARDS)

    @property
    def rejects(self) -> str:
        return os.path.join(self.root, _REJECTS)

    def rejects_of(self, stage: str) -> str:
        """The run's published copy of one stage's rejects."""
        return os.path.join(self.root, _REJECTS, stage)

    @property
    def manifest(self) -> str:
        return os.path.join(self.root, _MANIFEST)

    @property
    def report(self) -> str:
        return os.path.join(self.root, _REPORT)

    @property
    def report_page(self) -> str:
        return os.path.join(self.root, _REPORT, "index.html")

    @property
    def export(self) -> str:
        return os.path.join(self.root, _EXPORT)

    def export_file(self, fmt: str, suffix: str) -> str:
        return os.path.join(self.root, _EXPORT, f"{fmt}.{suffix}")

    @property
    def derived(self) -> str:
        return os.path.join(self.root, _DERIVED)

    def derived_note(self, name: str) -> str:
        return os.path.join(self.root, _DERIVED, name)

    @property
    def judge_cache(self) -> str:
        """The judge's score cache when --judge-cache is not given."""
        return os.path.join(self.root, _CACHE, "judge")

    @property
    def lock(self) -> str:
        return os.path.join(self.root, _LOCK)

    @property
    def marker(self) -> str:
        return os.path.join(self.root, _MARKER)

    def path(self, relative: str) -> str:
        """A file a record or a note names by its path inside the run."""
        return os.path.join(self.root, relative)

    def temporary_parents(self, stage_names: list[str]) -> list[str]:
        """The folders where a killed run may leave `*.tmp-PID` / `*.old-PID`: the top, stages/, each stage's
        folder, report/ and export/."""
        return [self.root, self.stages, *[self.stage(n).path for n in stage_names], self.report, self.export]


def is_index_shard(name: str) -> bool:
    """A name in the index stage's folder that is one of its FAISS index shards."""
    return name.startswith(_INDEX_SHARD.split("{")[0])


def owning_folder(relative: str) -> str:
    """The folder of the run that a recorded file (its path inside the run) sits in: its stage's folder
    (stages/<name>) or a top-level one (shards, rejects)."""
    parts = relative.split("/")
    return "/".join(parts[:2]) if parts[0] == _STAGES else parts[0]
