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

from judgemine.schemas.io import part_name, shard_name

Folder = Literal["queries", "candidates", "images", "rejects"]  # the record folders a stage writes
STAGES = "stages"
RECORD = "stage.json"
SHARDS = "shards"
REJECTS = "rejects"
MANIFEST = "manifest.json"
REPORT = "report"
EXPORT = "export"
DERIVED = "derived"
CACHE = "cache"
LOCK = ".judgemine.lock"
MARKER = ".judgemine-run"
INDEX_SHARD = "shard-{:05d}"


@dataclass(frozen=True)
class StageFolder:
    """One stage's folder, `stages/<name>/`: its record and the record folders it publishes."""
    path: str

    @property
    def record(self) -> str:
        return os.path.join(self.path, RECORD)

    def folder(self, name: Folder) -> str:
        return os.path.join(self.path, name)

    def part(self, folder: Folder, index: int) -> str:
        """Part `index` of one of its folders (query chunk i is part i of every stage)."""
        return os.path.join(self.path, folder, part_name(index))

    def own_part(self, index: int) -> str:
        """Part `index` of a stage that writes its parts at the top of its folder (retrieve, judge)."""
        return os.path.join(self.path, part_name(index))

    def index_shard(self, shard: int) -> str:
        """The index stage's folder of one FAISS index shard."""
        return os.path.join(self.path, INDEX_SHARD.format(shard))


@dataclass(frozen=True)
class RunLayout:
    """Where everything of the run at `root` lives."""
    root: str

    @property
    def stages(self) -> str:
        return os.path.join(self.root, STAGES)

    def stage(self, name: str) -> StageFolder:
        return StageFolder(os.path.join(self.root, STAGES, name))

    def published(self, name: str) -> str:
        """A folder a stage publishes at the top of the run (mine: shards)."""
        return os.path.join(self.root, name)

    @property
    def shards(self) -> str:
        return os.path.join(self.root, SHARDS)

    def shard(self, index: int, count: int) -> str:
        return os.path.join(self.root, SHARDS, shard_name(index, count))

    @property
    def rejects(self) -> str:
        return os.path.join(self.root, REJECTS)

    def rejects_of(self, stage: str) -> str:
        """The run's published copy of one stage's rejects."""
        return os.path.join(self.root, REJECTS, stage)

    @property
    def manifest(self) -> str:
        return os.path.join(self.root, MANIFEST)

    @property
    def report(self) -> str:
        return os.path.join(self.root, REPORT)

    @property
    def report_page(self) -> str:
        return os.path.join(self.root, REPORT, "index.html")

    @property
    def export(self) -> str:
        return os.path.join(self.root, EXPORT)

    def export_file(self, fmt: str, suffix: str) -> str:
        return os.path.join(self.root, EXPORT, f"{fmt}.{suffix}")

    @property
    def derived(self) -> str:
        return os.path.join(self.root, DERIVED)

    def derived_note(self, name: str) -> str:
        return os.path.join(self.root, DERIVED, name)

    @property
    def judge_cache(self) -> str:
        """The judge's score cache when --judge-cache is not given."""
        return os.path.join(self.root, CACHE, "judge")

    @property
    def lock(self) -> str:
        return os.path.join(self.root, LOCK)

    @property
    def marker(self) -> str:
        return os.path.join(self.root, MARKER)

    def path(self, relative: str) -> str:
        """A file a record or a note names by its path inside the run."""
        return os.path.join(self.root, relative)

    def temporary_parents(self, stage_names: list[str]) -> list[str]:
        """The folders where a killed run may leave `*.tmp-PID` / `*.old-PID`: the top, stages/, each stage's
        folder, report/ and export/."""
        return [self.root, self.stages, *[self.stage(n).path for n in stage_names], self.report, self.export]
