"""Coarse units of work: a stage's elements are chunk descriptors, never bulk rows (bulk data inside
`beam.Create` is pickled into the pipeline definition; docs/ARCHITECTURE.md)."""
from __future__ import annotations

from dataclasses import dataclass

from judgemine.schemas.io import part_index
from judgemine.schemas.layout import Side


@dataclass(frozen=True)
class Chunk:
    """One part file of a stage's input: `side` is "queries" or "candidates", `index` its part number."""
    side: Side
    index: int
    path: str


def chunks_of(side: Side, paths: list[str]) -> list[Chunk]:
    """Descriptors for part files named part-NNNNN.parquet, numbered by their file name."""
    return [Chunk(side, part_index(p), p) for p in paths]
