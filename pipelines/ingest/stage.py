"""Stage 1, ingest: pair and corpus files to typed query chunks, the candidate pool and the ingest rejects."""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from collections import Counter
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.pvalue import AsDict, AsList

from judgemine.pipelines.ingest.reject_gate import FileCount, check_rejects, files_of, top_reasons, unread_line
from judgemine.pipelines.ingest.settings import IngestStageSettings
from judgemine.pipelines.run.artifacts import count_rows
from judgemine.pipelines.run.errors import UserError
from judgemine.pipelines.run.stage import Counters, Stage, StageContext
from judgemine.schemas import CANDIDATES, QUERIES, storage
from judgemine.schemas.layout import RunLayout
from judgemine.transforms.common.rejects import WriteRejects, read_rejects, reason_counts
from judgemine.transforms.ingest.pool import (
    REJECTS_TAG,
    REPEATED_PAIRS,
    CheckCorpusIds,
    ChunkPoolRange,
    ChunkQueries,
    DedupPoolRange,
    ExcludeSameContent,
    KeyByBucket,
    MergeRepeatedPairs,
    RankGroupStarts,
    SplitCorpusIds,
    WritePart,
    pool_entries,
    pool_range,
    renumber_chunks,
    write_empty_part,
)
from judgemine.transforms.ingest.records import (
    FILE_ROWS,
    UNREAD_FIELD,
    IdentifyRecords,
    ImagePolicy,
    InputFile,
    ParseInputFile,
    WriteImageList,
    changed_images,
)

log = logging.getLogger(__name__)

KINDS = ("pairs", "corpus", "rejects", "images")  # what the parse and identify steps tag their tables with


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


class KindOf(beam.PartitionFn):
    """The parse and identify steps' tables to one output per kind."""

    def partition_for(self, element: Any, num_partitions: int, *args: Any, **kwargs: Any) -> int:
        return KINDS.index(element[0])


def _is_parquet(path: str) -> bool:
    with FileSystems.open(path, compression_type="uncompressed") as f:
        return f.read(4) == b"PAR1"


def check(settings: IngestStageSettings) -> None:
    """Every input a readable file (not a folder), the image root a folder: before any stage starts."""
    if not settings.pairs:
        raise UserError("no pair files given: pass --pairs PATH (or `pairs:` in the config)")
    mapping = settings.fields.problem()
    if mapping:
        raise UserError(mapping)
    if settings.fields.layout() and settings.pairs_layout != "auto":
        raise UserError(f"--pairs-layout {settings.pairs_layout} and the field flags both say where the fields are: "
                        "give one of them")
    for path in (*settings.pairs, *settings.corpus):
        if not FileSystems.exists(path):
            raise UserError(f"input file not found: {path}")
        if "://" not in path and not os.path.isfile(path):
            raise UserError(f"input {path} is a {'folder' if os.path.isdir(path) else 'special file'}, not a file")
        if "://" not in path and not os.access(path, os.R_OK):
            raise UserError(f"input file {path} is not readable (permissions)")
        if path.endswith(".parquet") and not _is_parquet(path):
            raise UserError(f"input {path} is named .parquet but is not a Parquet file (no PAR1 magic bytes): "
                            "rename it for its format (.jsonl, .json)")
    root = settings.image_root
    if root and "://" not in root and not os.path.isdir(root.removeprefix("file://")):
        raise UserError(f"--image-root {root} is not a folder")


def input_fingerprints(settings: IngestStageSettings) -> dict[str, str]:
    """sha256 of every input file; a missing or unreadable file is a clear error, not a silent skip."""
    check(settings)
    return {path: _file_sha256(path) for path in (*settings.pairs, *settings.corpus)}


def build(p: beam.Pipeline, ctx: StageContext[IngestStageSettings]) -> None:
    s = ctx.settings
    files = [InputFile(path, "pairs") for path in s.pairs] + [InputFile(path, "corpus") for path in s.corpus]
    images = ImagePolicy(s.image_root, s.max_image_pixels, s.max_image_bytes, not s.skip_image_check)
    pairs, corpus, parse_rejects, images_read = (
        p
        | "ListInputFiles" >> beam.Create(files, reshuffle=False)
        | "SpreadFiles" >> beam.Reshuffle()
        | "ParseRows" >> beam.ParDo(ParseInputFile(s.pairs_layout, s.fields, s.max_text_chars, ctx.work))
        | "SpreadBatches" >> beam.Reshuffle()
        | "CheckImagesAndIdentify" >> beam.ParDo(IdentifyRecords(images))
        | "SplitByKind" >> beam.Partition(KindOf(), len(KINDS)))
    pairs, corpus, parse_rejects, images_read = (c | f"{kind}Tables" >> beam.Map(lambda tagged: tagged[1])
                                                 for c, kind in zip((pairs, corpus, parse_rejects, images_read),
                                                                    KINDS))
    storage.make_dirs(ctx.folder.folder("images"))
    _ = images_read | "WriteImageList" >> beam.ParDo(WriteImageList(ctx.folder.folder("images")))
    kept = (pairs
            | "KeyByQueryId" >> beam.ParDo(KeyByBucket("query_id"))
            | "GroupByQueryId" >> beam.GroupByKey()
            | "MergeRepeatedPairs" >> beam.ParDo(MergeRepeatedPairs()).with_outputs(REJECTS_TAG, main="kept"))
    split = corpus | "SplitCorpusIds" >> beam.ParDo(SplitCorpusIds()).with_outputs("without_id", main="with_id")
    owned = (split.with_id
             | "KeyByCorpusId" >> beam.ParDo(KeyByBucket("corpus_id"))
             | "GroupByCorpusId" >> beam.GroupByKey()
             | "CheckCorpusIds" >> beam.ParDo(CheckCorpusIds()).with_outputs(REJECTS_TAG, main="kept"))
    _write_pool(ctx, (kept.kept | "PositivesToPool" >> beam.Map(pool_entries, True),
                      (owned.kept, split.without_id) | "CorpusRows" >> beam.Flatten()
                      | "CorpusToPool" >> beam.Map(pool_entries, False)))
    _write_queries(ctx, kept.kept)
    _ = ((parse_rejects, kept[REJECTS_TAG], owned[REJECTS_TAG]) | "AllRejects" >> beam.Flatten()
         | "RejectRows" >> beam.FlatMap(lambda table: table.to_pylist())
         | "WriteRejects" >> WriteRejects(ctx.folder.folder("rejects")))


def _write_pool(ctx: StageContext[IngestStageSettings], entries: tuple[beam.PCollection, beam.PCollection]) -> None:
    """The pool deduplicated per id range, then cut into parts of chunk_size in id order."""
    directory = ctx.folder.folder("candidates")
    ranges = (entries | "PoolEntries" >> beam.Flatten()
              | "KeyByIdRange" >> beam.ParDo(KeyByBucket("candidate_id", pool_range))
              | "GroupByIdRange" >> beam.GroupByKey()
              | "DedupPool" >> beam.ParDo(DedupPoolRange()))
    counts = ranges | "CountPerRange" >> beam.Map(lambda ranged: (ranged[0], ranged[1].num_rows))
    _ = (ranges
         | "PoolToParts" >> beam.ParDo(ChunkPoolRange(ctx.settings.chunk_size), AsDict(counts))
         | "GroupByPoolPart" >> beam.GroupByKey()
         | "WritePoolParts" >> beam.ParDo(WritePart(directory, CANDIDATES, ["candidate_id"]))
         | "PoolRows" >> beam.CombineGlobally(sum)
         | "PoolPartZero" >> beam.Map(write_empty_part, directory, CANDIDATES))


def _write_queries(ctx: StageContext[IngestStageSettings], kept: beam.PCollection) -> None:
    """Queries grouped by content (exclusions), chunked by their groups' first queries' ranks in input order
    (counted per line range: no worker holds every group), written."""
    directory = ctx.folder.folder("queries")
    grouped = (kept
               | "KeyByContent" >> beam.ParDo(KeyByBucket("query_content_id"))
               | "GroupByContent" >> beam.GroupByKey()
               | "ExcludeSameContent" >> beam.ParDo(ExcludeSameContent(ctx.settings.pairs)).with_outputs(
                   "positions", "starts", main="rows"))
    counts = (grouped.positions | "QueriesInRange" >> beam.MapTuple(lambda key, lines: (key, len(lines)))
              | "QueriesPerRange" >> beam.CombinePerKey(sum))
    assigned = ({"positions": grouped.positions, "starts": grouped.starts}
                | "JoinByRange" >> beam.CoGroupByKey()
                | "RankGroupStarts" >> beam.ParDo(RankGroupStarts(ctx.settings.chunk_size), AsDict(counts)))
    used = (assigned | "ChunksUsed" >> beam.FlatMap(lambda kv: np.unique(kv[1][:, 2]).tolist())
            | "DistinctChunks" >> beam.Distinct())
    chunks = assigned | "RenumberChunks" >> beam.Map(renumber_chunks, AsList(used))
    _ = ({"rows": grouped.rows, "chunks": chunks}
         | "JoinChunks" >> beam.CoGroupByKey()
         | "QueriesToChunks" >> beam.ParDo(ChunkQueries())
         | "GroupByChunk" >> beam.GroupByKey()
         | "WriteQueryChunks" >> beam.ParDo(WritePart(directory, QUERIES, ["group_source", "group_line", "source",
                                                                             "line", "query_id"]))
         | "QueryRows" >> beam.CombineGlobally(sum)
         | "QueryPartZero" >> beam.Map(write_empty_part, directory, QUERIES))


def count(ctx: StageContext[IngestStageSettings], counters: Counters) -> dict[str, Any]:
    """Rows read (Beam counters) against what the stage wrote, pair rows and corpus rows each: rows in = queries +
    rejects + pairs read again, corpus rows in = corpus rows kept (in the pool, merged with an equal candidate or
    not) + corpus rejects. The manifest checks both."""
    corpus_files, rejected, corpus_rejects = set(ctx.settings.corpus), 0, 0
    reasons: Counter[str] = Counter()
    by_file: dict[str, list[str]] = {path: [] for path in (*ctx.settings.pairs, *ctx.settings.corpus)}
    for part in read_rejects(ctx.folder.folder("rejects"), ["reason", "source"]):  # a part at a time
        sources, texts = part.column("source").to_pylist(), part.column("reason").to_pylist()
        rejected += part.num_rows
        corpus_rejects += sum(1 for source in sources if source in corpus_files)
        reasons.update(reason_counts(texts))
        for source, reason in zip(sources, texts):
            by_file.setdefault(source, []).append(reason)
    unread: dict[str, dict[str, int]] = {}
    for name, rows in sorted(counters.items()):
        if name.startswith(UNREAD_FIELD):
            path, field = json.loads(name[len(UNREAD_FIELD):])
            unread.setdefault(path, {})[field] = rows
    files = {path: FileCount(rows=counters.get(f"{FILE_ROWS}{path}", 0), rejected=len(found),
                             reasons=top_reasons(found), unread=unread.get(path, {}))
             for path, found in by_file.items()}
    if unread_line(files):
        log.info("ingest: %s", unread_line(files))
    queries = count_rows(ctx.folder.folder("queries"))
    # pairs in: a FlagEmbedding row with several positives is that many pairs
    pairs_in = counters.get("pairs_rows_read", 0) + counters.get("pairs_from_positive_lists", 0)
    return {"pairs_in": pairs_in, "queries": queries, "repeated_pairs": counters.get(REPEATED_PAIRS, 0),
            "corpus_in": counters.get("corpus_rows_read", 0), "corpus_kept": counters.get("corpus_rows_kept", 0),
            "corpus_rejected": corpus_rejects,
            "candidates": count_rows(ctx.folder.folder("candidates")), "rejected": rejected,
            "rejected_pairs": rejected - corpus_rejects, "rejected_by_reason": dict(sorted(reasons.items())),
            "files": files}


def outdated(settings: IngestStageSettings, record: dict[str, Any]) -> str:
    """An image replaced or gone since ingest read it (its path, hence the fingerprint, unchanged)."""
    return changed_images(RunLayout(settings.output).stage("ingest").folder("images"))


def gate(settings: IngestStageSettings, record: dict[str, Any]) -> None:
    """No stage after ingest runs on input it mostly refused (pipelines/ingest/reject_gate.py)."""
    check_rejects(files_of(record), settings.max_reject_share, settings.image_root,
                  f"ingest is committed: every rejected row is in "
                  f"{RunLayout(settings.output).stage('ingest').folder('rejects')} with its reason")


def accounting(counts: dict[str, Any]) -> dict[str, Any]:
    """Every pair and corpus row the run reads is read here."""
    return {"pairs_in": counts["pairs_in"], "rejected": counts["rejected_pairs"],
            "repeated": counts.get("repeated_pairs", 0),
            "corpus": {"rows_in": counts["corpus_in"], "kept": counts["corpus_kept"],
                       "rejected": counts["corpus_rejected"]}}


STAGE = Stage("ingest", upstream=(), build=build, count=count, check=check, inputs=input_fingerprints,
              throughput="pairs_in", version="6", outdated=outdated, gate=gate,
              record=lambda ctx: {"chunk_size": ctx.settings.chunk_size}, accounting=accounting,
              manifest=lambda settings, record: {"inputs": record.get("inputs", {})}, work=lambda ctx: (0, "rows"))
