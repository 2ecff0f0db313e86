"""Rejects rows, the same shape in every stage (schemas.REJECTS): where a row came from, why it was refused,
and the row itself as JSON, so the people who fix inputs can find and fix it."""
from __future__ import annotations

from typing import Any, Iterable

import apache_beam as beam
import pyarrow as pa

from judgemine.schemas import REJECTS, write_table


def reject_row(stage: str, reason: str, source: str, line: int, row_json: str,
               query_id: str | None = None) -> dict[str, Any]:
    return {"stage": stage, "reason": reason, "source": source, "line": line, "query_id": query_id,
            "row": row_json}


def write_rejects(rows: list[dict[str, Any]], path: str) -> None:
    """One Parquet file, rows in input order (source file, row number) whatever order the workers met them."""
    rows = sorted(rows, key=lambda r: (r["source"], r["line"]))
    write_table(pa.Table.from_pylist(rows, schema=REJECTS), path, REJECTS)


def reason_counts(reasons: Iterable[str]) -> dict[str, int]:
    """Counts per reason class (the text before the first colon: `missing_field: pos_text` -> missing_field)."""
    out: dict[str, int] = {}
    for r in reasons:
        key = r.split(":")[0]
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items()))


class WriteRejects(beam.PTransform):
    """A stage's rejects rows, gathered (they are few) into one file."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self._path = path

    def expand(self, rows: beam.PCollection) -> beam.PCollection:
        path = self._path
        return (rows | "Gather" >> beam.combiners.ToList()
                | "Write" >> beam.Map(lambda gathered: write_rejects(gathered, path)))
