"""What every export shares: the committed shards streamed a batch at a time, the first k negatives, fallback
rows kept or skipped (and counted), and a destination written under a temporary name and renamed when whole."""
from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import Any, ClassVar, Iterator, Literal

from judgemine.pipelines.artifacts import require_stage
from judgemine.pipelines.errors import UserError
from judgemine.schemas import SHARDS, list_parts, parquet_file, storage
from judgemine.schemas.io import check_schema, shard_info

NEGATIVE_LISTS = ("neg_ids", "neg_texts", "neg_images", "neg_scores", "neg_ranks", "neg_similarities")
Layout = Literal["triplet", "n-tuple", "n-tuple-scores"]


@dataclass(frozen=True)
class ExportOptions:
    num_negatives: int | None = None  # the first k stored negatives; None = all
    skip_fallback: bool | None = None  # None = the format's default
    seed: int = 0  # reranker-listwise: the positive's position
    layout: Layout = "n-tuple"  # sentence-transformers
    prompt: str = ""  # flagembedding: the query instruction
    task_type: str = "normal"  # flagembedding: the `type` field


@dataclass
class ExportResult:
    records: int = 0
    rows: int = 0
    fallback_skipped: int = 0


class Exporter:
    """One format: `write` gets the rows (negatives already cut to k) and an open destination."""
    name: ClassVar[str]
    suffix: ClassVar[str]
    binary: ClassVar[bool] = False
    skips_fallback: ClassVar[bool] = True  # the default; a fallback row's negatives outscore its positive
    text_only: ClassVar[bool] = False

    def __init__(self, options: ExportOptions) -> None:
        self.options = options

    def write(self, rows: Iterator[dict[str, Any]], f: Any, k: int) -> int:
        """Writes the rows (each with k negatives) to `f`; returns the records written."""
        raise NotImplementedError


def committed_shards(output: str) -> list[str]:
    """The shard files of a committed mine stage (one that did not commit, or whose files changed, is refused)."""
    require_stage(output, "mine")
    parts = list_parts(os.path.join(output, "shards"))
    if not parts:
        raise FileNotFoundError(f"no shards under {output}/shards: run `judgemine run` first")
    return parts


def shard_rows(parts: list[str], k: int, skip_fallback: bool, result: ExportResult,
               text_only: str = "") -> Iterator[dict[str, Any]]:
    """The shards' rows, a batch at a time, with their first k negatives; `text_only` names a format that
    cannot carry images (a row with one is an error)."""
    for path in parts:
        with parquet_file(path) as f:
            check_schema(f.schema_arrow, SHARDS, path)
            batches = f.iter_batches(batch_size=1024)
            for row in (row for batch in batches for row in batch.to_pylist()):
                result.rows += 1
                if row["fallback"] and skip_fallback:
                    result.fallback_skipped += 1
                    continue
                if text_only and (row["query_image"] or row["pos_image"] or any(row["neg_images"])):
                    raise UserError(f"the {text_only} export is text-only; query {row['query_id']} has images "
                                    f"(use --format unime)")
                row.update({name: row[name][:k] for name in NEGATIVE_LISTS})
                yield row


def run_export(exporter: Exporter, output: str, destination: str) -> ExportResult:
    result = ExportResult()
    opts = exporter.options
    skip = exporter.skips_fallback if opts.skip_fallback is None else opts.skip_fallback
    parts = committed_shards(output)
    stored = min(shard_info(p).num_negatives for p in parts)
    k = stored if opts.num_negatives is None else opts.num_negatives
    if not 0 < k <= stored:
        raise UserError(f"--num-negatives {k}: the shards store {stored} negatives per row")
    rows = shard_rows(parts, k, skip, result, exporter.name if exporter.text_only else "")
    tmp = f"{destination}.tmp-{os.getpid()}"
    try:
        with storage.open_write(tmp) as raw:
            f = raw if exporter.binary else io.TextIOWrapper(raw, encoding="utf-8")
            result.records = exporter.write(rows, f, k)
            if not exporter.binary:
                f.detach()  # flushes; `raw` stays open for the with block to close
        storage.move(tmp, destination)
    finally:
        storage.remove(tmp)
    return result


def distinct(values: list[Any]) -> list[Any]:
    """First occurrences in order: a row whose filter left n < m candidates repeats them to fill m."""
    return list(dict.fromkeys(values))
