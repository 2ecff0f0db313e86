"""Stage 1: pair and corpus files to typed query chunks, the candidate pool and the ingest rejects."""
from __future__ import annotations

import hashlib
import os
import time
from typing import Any, Iterable

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.artifacts import atomic_dir, chain_fingerprint, list_parts, part_name, stage_dir, write_stage_record
from pipelines.settings import Settings
from schemas import CANDIDATES, QUERIES, REJECTS, read_table, write_table
from transforms.ingest import (IdentifyRecords, ImagePolicy, InputFile, ParseInputFile, build_pool,
                               tables_to_rows)

FINGERPRINT_SETTINGS = ("pairs", "corpus", "pairs_layout", "image_root", "chunk_size", "max_image_pixels",
                        "skip_image_check")


def image_policy(settings: Settings) -> ImagePolicy:
    return ImagePolicy(settings.image_root, settings.max_image_pixels, not settings.skip_image_check)


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with FileSystems.open(path, compression_type="uncompressed") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def input_fingerprints(settings: Settings) -> dict[str, str]:
    """sha256 of every input file; a missing or unreadable file is a clear error, not a silent skip."""
    if not settings.pairs:
        raise ValueError("no pair files given: pass --pairs PATH (or `pairs:` in the config)")
    out = {}
    for path in (*settings.pairs, *settings.corpus):
        if not FileSystems.exists(path):
            raise FileNotFoundError(f"input file not found: {path}")
        out[path] = file_sha256(path)
    return out




def _write_chunks(rows: list[dict[str, Any]], schema: pa.Schema, directory: str, chunk_size: int) -> int:
    os.makedirs(directory)
    for i, start in enumerate(range(0, max(len(rows), 1), chunk_size)):
        write_table(pa.Table.from_pylist(rows[start:start + chunk_size], schema=schema),
                    os.path.join(directory, part_name(i)), schema)
    return len(rows)


def fingerprint(settings: Settings, inputs: dict[str, str] | None = None) -> str:
    inputs = input_fingerprints(settings) if inputs is None else inputs
    return chain_fingerprint(settings.fingerprint(*FINGERPRINT_SETTINGS), repr(sorted(inputs.items())))


class WriteIngestArtifacts(beam.DoFn):
    """Runs the global checks (duplicate ids, candidate dedup, exclusions) over ids alone, in one worker
    (the rows' image work is done), and writes the stage's tables."""

    def __init__(self, directory: str, settings: Settings) -> None:
        self._dir = directory
        self._settings = settings

    def process(self, tagged: list[tuple[str, pa.Table]]) -> None:
        by_kind: dict[str, list[pa.Table]] = {"pairs": [], "corpus": [], "rejects": []}
        for kind, table in tagged:
            by_kind[kind].append(table)
        queries, candidates, rejects = build_pool(
            tables_to_rows(by_kind["pairs"]), tables_to_rows(by_kind["corpus"]))
        rejects = tables_to_rows(by_kind["rejects"]) + rejects
        rejects.sort(key=lambda r: (r["source"], r["line"]))
        write_table(pa.Table.from_pylist(rejects, schema=REJECTS), os.path.join(self._dir, "rejects.parquet"),
                    REJECTS)
        size = self._settings.chunk_size
        _write_chunks(queries, QUERIES, os.path.join(self._dir, "queries"), size)
        _write_chunks(candidates, CANDIDATES, os.path.join(self._dir, "candidates"), size)


def run_ingest(settings: Settings, options: PipelineOptions) -> dict[str, Any]:
    started = time.time()
    inputs = input_fingerprints(settings)
    fp = fingerprint(settings, inputs)
    files = [InputFile(p, "pairs") for p in settings.pairs] + [InputFile(p, "corpus") for p in settings.corpus]
    with atomic_dir(stage_dir(settings.output, "ingest")) as tmp:
        with beam.Pipeline(options=options) as p:
            _ = (p
                 | "ListInputFiles" >> beam.Create(files)
                 | "SpreadFiles" >> beam.Reshuffle()
                 | "ParseRows" >> beam.ParDo(ParseInputFile(settings.pairs_layout))
                 | "SpreadBatches" >> beam.Reshuffle()
                 | "CheckImagesAndIdentify" >> beam.ParDo(IdentifyRecords(image_policy(settings)))
                 | "GatherTables" >> beam.combiners.ToList()
                 | "WriteArtifacts" >> beam.ParDo(WriteIngestArtifacts(tmp, settings)))
        record = write_stage_record(tmp, "ingest", fp, started, _count_ingest(tmp, settings), inputs=inputs)
    return record


def _count_ingest(directory: str, settings: Settings) -> dict[str, Any]:
    """Row counts of what the stage wrote: pair rows in = queries + pair rejects (checked by the tests)."""
    def rows(d: str) -> int:
        return sum(pq.ParquetFile(p).metadata.num_rows for p in list_parts(os.path.join(directory, d)))

    rejects = read_table(os.path.join(directory, "rejects.parquet"), REJECTS, ["reason", "source"]).to_pylist()
    pair_files = set(settings.pairs)
    pair_rejects = sum(1 for r in rejects if r["source"] in pair_files)
    queries = rows("queries")
    return {"pairs_in": queries + pair_rejects, "queries": queries, "candidates": rows("candidates"),
            "rejected": len(rejects), "rejected_pairs": pair_rejects,
            "rejected_by_reason": reasons_histogram(r["reason"] for r in rejects)}


def reasons_histogram(reasons: Iterable[str]) -> dict[str, int]:
    """Counts per reason class (the text before the first colon: `missing_field: pos_text` -> missing_field)."""
    out: dict[str, int] = {}
    for r in reasons:
        key = r.split(":")[0]
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items()))
