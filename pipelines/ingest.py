"""Stage 1, ingest: pair and corpus files to typed query chunks, the candidate pool and the ingest rejects."""
from __future__ import annotations

import functools
import hashlib
import os
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from judgemine.pipelines.artifacts import count_rows
from judgemine.pipelines.errors import UserError
from judgemine.pipelines.settings import Settings
from judgemine.pipelines.stage import Counters, Stage, StageContext
from judgemine.schemas import REJECTS, read_table
from judgemine.transforms.common.rejects import reason_counts
from judgemine.transforms.ingest.pool import WriteIngestArtifacts
from judgemine.transforms.ingest.records import IdentifyRecords, ImagePolicy, InputFile, ParseInputFile


def _file_sha256(path: str) -> str:
    """Hashed once per file version and process: `run` fingerprints ingest for its checks, its skip decision and
    the stage itself."""
    meta = FileSystems.match([path])[0].metadata_list[0]
    return _sha256_of(path, meta.size_in_bytes, meta.last_updated_in_seconds)


@functools.lru_cache(maxsize=1024)
def _sha256_of(path: str, size: int, modified: float) -> str:
    h = hashlib.sha256()
    with FileSystems.open(path, compression_type="uncompressed") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check(settings: Settings) -> None:
    """Every input a readable file (not a folder), the image root a folder: before any stage starts."""
    if not settings.pairs:
        raise UserError("no pair files given: pass --pairs PATH (or `pairs:` in the config)")
    for path in (*settings.pairs, *settings.corpus):
        if not FileSystems.exists(path):
            raise UserError(f"input file not found: {path}")
        if "://" not in path and not os.path.isfile(path):
            raise UserError(f"input {path} is a {'folder' if os.path.isdir(path) else 'special file'}, not a file")
        if "://" not in path and not os.access(path, os.R_OK):
            raise UserError(f"input file {path} is not readable (permissions)")
    root = settings.image_root
    if root and "://" not in root and not os.path.isdir(root.removeprefix("file://")):
        raise UserError(f"--image-root {root} is not a folder")


def input_fingerprints(settings: Settings) -> dict[str, str]:
    """sha256 of every input file; a missing or unreadable file is a clear error, not a silent skip."""
    check(settings)
    return {path: _file_sha256(path) for path in (*settings.pairs, *settings.corpus)}


def build(p: beam.Pipeline, ctx: StageContext) -> None:
    s = ctx.settings
    files = [InputFile(path, "pairs") for path in s.pairs] + [InputFile(path, "corpus") for path in s.corpus]
    images = ImagePolicy(s.image_root, s.max_image_pixels, s.max_image_bytes, not s.skip_image_check)
    _ = (p
         | "ListInputFiles" >> beam.Create(files)
         | "SpreadFiles" >> beam.Reshuffle()
         | "ParseRows" >> beam.ParDo(ParseInputFile(s.pairs_layout, s.max_text_chars))
         | "SpreadBatches" >> beam.Reshuffle()
         | "CheckImagesAndIdentify" >> beam.ParDo(IdentifyRecords(images))
         | "GatherTables" >> beam.combiners.ToList()
         | "WriteArtifacts" >> beam.ParDo(WriteIngestArtifacts(ctx.directory, s.chunk_size)))


def count(ctx: StageContext, counters: Counters) -> dict[str, Any]:
    """Rows read (Beam counters) against what the stage wrote, pair rows and corpus rows each: rows in =
    queries + rejects, corpus rows in = corpus rows kept (in the pool, merged with an equal candidate or not)
    + corpus rejects. The manifest checks both."""
    rejects = read_table(os.path.join(ctx.directory, "rejects.parquet"), REJECTS, ["reason", "source"]).to_pylist()
    corpus_files = set(ctx.settings.corpus)
    corpus_rejects = sum(1 for r in rejects if r["source"] in corpus_files)
    queries = count_rows(os.path.join(ctx.directory, "queries"))
    return {"pairs_in": counters.get("pairs_rows_read", 0), "queries": queries,
            "corpus_in": counters.get("corpus_rows_read", 0), "corpus_kept": counters.get("corpus_rows_kept", 0),
            "corpus_rejected": corpus_rejects,
            "candidates": count_rows(os.path.join(ctx.directory, "candidates")), "rejected": len(rejects),
            "rejected_pairs": len(rejects) - corpus_rejects,
            "rejected_by_reason": reason_counts(r["reason"] for r in rejects)}


STAGE = Stage("ingest", upstream=(), build=build, count=count, check=check, inputs=input_fingerprints,
              throughput="pairs_in",
              settings=("pairs", "corpus", "pairs_layout", "image_root", "chunk_size", "max_image_pixels",
                        "max_image_bytes", "max_text_chars", "skip_image_check"), version="2")
