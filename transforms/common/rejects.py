"""Rejects rows, the same shape in every stage (schemas.REJECTS): where a row came from, why it was refused,
and the row itself as JSON, so the people who fix inputs can find and fix it."""
from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam
import pyarrow as pa

from judgemine.schemas import REJECTS, list_parts, read_table, storage, write_table


def reject_row(stage: str, reason: str, source: str, line: int, row_json: str,
               query_id: str | None = None) -> dict[str, Any]:
    return {"stage": stage, "reason": reason, "source": source, "line": line, "query_id": query_id,
            "row": row_json}


LINES_PER_PART = 100_000  # a part holds one source's rejects of at most this many consecutive lines


def part_of(row: dict[str, Any]) -> str:
    """The part file a reject row belongs to: its source and line range, so no worker ever holds every reject
    (a 10M-row file with many bad rows is many parts), and the same rows always land in the same part."""
    source = hashlib.sha256(row["source"].encode()).hexdigest()[:12]
    return f"part-{source}-{row['line'] // LINES_PER_PART:06d}.parquet"


def write_rejects(rows: list[dict[str, Any]], path: str) -> None:
    """One part file, rows in input order (source file, row number) whatever order the workers met them."""
    rows = sorted(rows, key=lambda r: (r["source"], r["line"]))
    write_table(pa.Table.from_pylist(rows, schema=REJECTS), path, REJECTS)


def read_rejects(directory: str, columns: list[str] | None = None) -> Iterator[pa.Table]:
    """A stage's rejects, one part at a time (none when it rejected nothing)."""
    for path in list_parts(directory):
        yield read_table(path, REJECTS, columns)


def reason_counts(reasons: Iterable[str]) -> dict[str, int]:
    """Counts per reason class (the text before the first colon: `missing_field: pos_text` -> missing_field)."""
    out: dict[str, int] = {}
    for r in reasons:
        key = r.split(":")[0]
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items()))


class WriteRejects(beam.PTransform):
    """A stage's rejects rows to part files under `directory`, grouped by part_of (never gathered into one
    element)."""

    def __init__(self, directory: str) -> None:
        super().__init__()
        self._dir = directory

    def expand(self, rows: beam.PCollection) -> beam.PCollection:
        directory = self._dir
        storage.make_dirs(directory)
        return (rows | "KeyByPart" >> beam.Map(lambda row: (part_of(row), row))
                | "GroupByPart" >> beam.GroupByKey()
                | "WritePart" >> beam.MapTuple(lambda name, part: write_rejects(list(part),
                                                                                os.path.join(directory, name))))
