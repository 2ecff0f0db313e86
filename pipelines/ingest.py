"""Stage 1, ingest: pair and corpus files to typed query chunks, the candidate pool and the ingest rejects."""
from __future__ import annotations

import hashlib
import os
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from judgemine.pipelines.artifacts import count_rows
from judgemine.pipelines.settings import Settings
from judgemine.pipelines.stage import Counters, Stage, StageContext
from judgemine.schemas import REJECTS, read_table
from judgemine.transforms.common.rejects import reason_counts
from judgemine.transforms.ingest.pool import WriteIngestArtifacts
from judgemine.transforms.ingest.records import IdentifyRecords, ImagePolicy, InputFile, ParseInputFile


def _file_sha256(path: str) -> str:
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
        out[path] = _file_sha256(path)
    return out


def build(p: beam.Pipeline, ctx: StageContext) -> None:
    s = ctx.settings
    files = [InputFile(path, "pairs") for path in s.pairs] + [InputFile(path, "corpus") for path in s.corpus]
    images = ImagePolicy(s.image_root, s.max_image_pixels, not s.skip_image_check)
    _ = (p
         | "ListInputFiles" >> beam.Create(files)
         | "SpreadFiles" >> beam.Reshuffle()
         | "ParseRows" >> beam.ParDo(ParseInputFile(s.pairs_layout))
         | "SpreadBatches" >> beam.Reshuffle()
         | "CheckImagesAndIdentify" >> beam.ParDo(IdentifyRecords(images))
         | "GatherTables" >> beam.combiners.ToList()
         | "WriteArtifacts" >> beam.ParDo(WriteIngestArtifacts(ctx.directory, s.chunk_size)))


def count(ctx: StageContext, counters: Counters) -> dict[str, Any]:
    """Row counts of what the stage wrote: pair rows in = queries + pair rejects (checked by the tests)."""
    rejects = read_table(os.path.join(ctx.directory, "rejects.parquet"), REJECTS, ["reason", "source"]).to_pylist()
    pair_files = set(ctx.settings.pairs)
    pair_rejects = sum(1 for r in rejects if r["source"] in pair_files)
    queries = count_rows(os.path.join(ctx.directory, "queries"))
    return {"pairs_in": queries + pair_rejects, "queries": queries,
            "candidates": count_rows(os.path.join(ctx.directory, "candidates")), "rejected": len(rejects),
            "rejected_pairs": pair_rejects, "rejected_by_reason": reason_counts(r["reason"] for r in rejects)}


STAGE = Stage("ingest", upstream=(), build=build, count=count, inputs=input_fingerprints,
              settings=("pairs", "corpus", "pairs_layout", "image_root", "chunk_size", "max_image_pixels",
                        "skip_image_check"))
