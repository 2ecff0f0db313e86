"""Versioned Arrow schemas for the artifacts each stage hands to the next.

Each schema carries its name and version in its metadata; `schemas.io` writes that metadata into every
Parquet file and refuses to read a file written under another name or major version.
"""
from __future__ import annotations

import os
from typing import Any

import pyarrow as pa

SCHEMA_VERSION = "1.5"  # 1.1: shards gained num_candidates, num_false_negatives and their file metadata;
# 1.2: retrieval parts carry their query counts in their file metadata; 1.3: embedding vectors' elements are
# required (Parquet then stores no definition level per float: a part reads 1.5x faster; 1.2 parts still read);
# 1.4: queries and candidates carry the exact payload digest of each side (the judge's cache keys); 1.5: shards
# carry the extra positives (--false-negatives-as-positives; empty lists otherwise)


def _named(name: str, fields: list[pa.Field]) -> pa.Schema:
    return pa.schema(fields, metadata={"judgemine.schema": name, "judgemine.schema_version": SCHEMA_VERSION})


# One row per accepted query/positive pair (ingest). `excluded_ids` lists every positive of every pair whose
# query has the same content, so retrieval can exclude all of them; `query_content_id` is the query's own
# content hash in the candidate id space, so a candidate identical to the query is excluded too. The `*payload`
# columns are what a model reads of a side, exactly (transforms/common/content.py: payload_id): the judge's cache
# keys hold them, never the case-folded content ids.
QUERIES = _named("queries", [
    pa.field("query_id", pa.string(), nullable=False),
    pa.field("query_text", pa.string(), nullable=False),
    pa.field("query_image", pa.string(), nullable=False),
    pa.field("query_content_id", pa.string(), nullable=False),
    pa.field("query_payload", pa.string(), nullable=False),
    pa.field("pos_id", pa.string(), nullable=False),
    pa.field("pos_payload", pa.string(), nullable=False),
    pa.field("pos_text", pa.string(), nullable=False),
    pa.field("pos_image", pa.string(), nullable=False),
    pa.field("excluded_ids", pa.list_(pa.string()), nullable=False),
    pa.field("dataset", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("line", pa.int64(), nullable=False),
])

# The deduplicated candidate pool (ingest), sorted by candidate_id so FAISS row i is candidate i.
CANDIDATES = _named("candidates", [
    pa.field("candidate_id", pa.string(), nullable=False),
    pa.field("text", pa.string(), nullable=False),
    pa.field("image", pa.string(), nullable=False),
    pa.field("payload", pa.string(), nullable=False),
    pa.field("dataset", pa.string(), nullable=False),
])


def embeddings_schema(dim: int) -> pa.Schema:
    """Vectors of one side (queries or candidates), L2-normalised, in the row order of the ingest table."""
    return _named("embeddings", [
        pa.field("id", pa.string(), nullable=False),
        pa.field("vector", pa.list_(pa.field("item", pa.float32(), nullable=False), dim), nullable=False),
    ])


EMBEDDINGS = embeddings_schema(-1)  # name/version template; the dimension is checked per file

# Every image ingest read (ingest, `images/part-*`): where it was read from, the sha256 of its bytes, and the
# file's identity then ([size, mtime_ns, ctime_ns, inode] on a local disk; [size] on an object store), so a
# rerun finds a picture replaced under the image root without reading every picture again.
IMAGES = _named("images", [
    pa.field("path", pa.string(), nullable=False),
    pa.field("sha256", pa.string(), nullable=False),
    pa.field("disk", pa.list_(pa.field("item", pa.int64(), nullable=False)), nullable=False),
])

# Row i of the FAISS index is candidate ids[i].
INDEX_IDS = _named("index_ids", [pa.field("candidate_id", pa.string(), nullable=False)])

# Top-K per query after exclusions, in rank order.
RETRIEVAL = _named("retrieval", [
    pa.field("query_id", pa.string(), nullable=False),
    pa.field("candidate_id", pa.string(), nullable=False),
    pa.field("rank", pa.int32(), nullable=False),
    pa.field("similarity", pa.float32(), nullable=False),
])
# Key/values each retrieval part carries: its queries and how many got fewer than K (none at all) candidates, so
# the stage's counts come from footers, not from reading back every result row.
QUERIES_KEY = "judgemine.queries"
SHORT_OF_K_KEY = "judgemine.queries_short_of_k"
WITHOUT_CANDIDATES_KEY = "judgemine.queries_without_candidates"

# Parquet options per schema (zstd otherwise). Retrieval, K rows per query: the dictionary pages of its hash ids
# (unique strings) and their min/max statistics cost more to write than the search of a fast index and save
# nothing, and the ids are stored as they are (zstd halves them but doubled the part's write, which the next
# chunk's search waits for). Embeddings: float vectors do not compress (MiniLM's: zstd 9%, lz4 0.25%), zstd's
# decoding was a third of reading a query chunk's vectors, and their dictionary pages always spill: stored as they
# are (bench/RESULTS.md, retrieval at any pool size).
WRITE_OPTIONS: dict[str, dict[str, Any]] = {
    "retrieval": {"use_dictionary": ["query_id"], "write_statistics": False,
                  "compression": {"query_id": "zstd", "candidate_id": "none", "rank": "zstd", "similarity": "zstd"}},
    "embeddings": {"compression": "none", "use_dictionary": ["id"]},
}

# Judge soft scores P(Yes) for (query, candidate) and (query, positive) pairs.
JUDGE_SCORES = _named("judge_scores", [
    pa.field("query_id", pa.string(), nullable=False),
    pa.field("candidate_id", pa.string(), nullable=False),
    pa.field("is_positive", pa.bool_(), nullable=False),
    pa.field("score", pa.float32(), nullable=False),
])

# The judge's content-addressed score cache (transforms/judge/score_cache.py).
SCORE_CACHE = _named("score_cache", [
    pa.field("key", pa.string(), nullable=False),
    pa.field("score", pa.float32(), nullable=False),
])

# The trainer-facing rows: one per query, negatives as parallel lists.
SHARDS = _named("shards", [
    pa.field("query_id", pa.string(), nullable=False),
    pa.field("query_text", pa.string(), nullable=False),
    pa.field("query_image", pa.string(), nullable=False),
    pa.field("pos_id", pa.string(), nullable=False),
    pa.field("pos_text", pa.string(), nullable=False),
    pa.field("pos_image", pa.string(), nullable=False),
    pa.field("pos_score", pa.float32(), nullable=False),
    pa.field("neg_ids", pa.list_(pa.string()), nullable=False),
    pa.field("neg_texts", pa.list_(pa.string()), nullable=False),
    pa.field("neg_images", pa.list_(pa.string()), nullable=False),
    pa.field("neg_scores", pa.list_(pa.float32()), nullable=False),
    pa.field("neg_ranks", pa.list_(pa.int32()), nullable=False),
    pa.field("neg_similarities", pa.list_(pa.float32()), nullable=False),
    pa.field("num_unique_negatives", pa.int32(), nullable=False),
    # the query's retrieved candidates the judge scored, and how many of them the margins removed as false
    # negatives (a fallback row: all of them)
    pa.field("num_candidates", pa.int32(), nullable=False),
    pa.field("num_false_negatives", pa.int32(), nullable=False),
    pa.field("fallback", pa.bool_(), nullable=False),
    pa.field("dataset", pa.string(), nullable=False),
    # with --false-negatives-as-positives: the candidates the judge scored at or above the positive, highest
    # first, as parallel lists (empty without the setting; a reader of 1.4 shards finds no such columns)
    pa.field("extra_pos_ids", pa.list_(pa.string()), nullable=False),
    pa.field("extra_pos_texts", pa.list_(pa.string()), nullable=False),
    pa.field("extra_pos_images", pa.list_(pa.string()), nullable=False),
    pa.field("extra_pos_scores", pa.list_(pa.float32()), nullable=False),
])

# The batches export (pipelines/outputs/exports/batches.py): shard rows in batch order, each with its batch number
# and the `anchor`/`positive` pair a sentence-transformers trainer reads. It is a shards file with three more
# columns in front, so ShardDataset and every shard reader read it (in its order), as a file of its own.
BATCH_COLUMNS = [pa.field("batch", pa.int32(), nullable=False), pa.field("anchor", pa.string(), nullable=False),
                 pa.field("positive", pa.string(), nullable=False)]

# Key/values each shard file carries besides its schema's: what a trainer needs to read it alone.
IMAGE_ROOT_KEY = "judgemine.image_root"  # relative image paths resolve against it ("" = as given)
NUM_NEGATIVES_KEY = "judgemine.num_negatives"  # m, the length of every neg_* list
FALLBACK_ROWS_KEY = "judgemine.fallback_rows"  # rows of this file whose negatives are the paper's fallback
BATCH_SIZE_KEY = "judgemine.batch_size"  # a batches export's batch size: every batch but the last holds this many


def shard_metadata(image_root: str, num_negatives: int, fallback_rows: int) -> dict[str, str]:
    """A shard's own metadata; a local image root is made absolute so the shard can be moved to a trainer."""
    root = image_root if not image_root or "://" in image_root else os.path.abspath(image_root)
    return {IMAGE_ROOT_KEY: root, NUM_NEGATIVES_KEY: str(num_negatives), FALLBACK_ROWS_KEY: str(fallback_rows)}


# Every row that did not make it, with where it came from and why; `row` is the raw input as JSON.
REJECTS = _named("rejects", [
    pa.field("stage", pa.string(), nullable=False),
    pa.field("reason", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("line", pa.int64(), nullable=False),
    pa.field("query_id", pa.string(), nullable=True),
    pa.field("row", pa.string(), nullable=False),
])
