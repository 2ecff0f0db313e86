"""Ingest's global checks as Beam shuffles: repeated pairs and duplicate query ids, corpus id conflicts, the
candidate pool's dedup and each query's exclusions are decided per key after a GroupByKey, so no worker holds all
rows.

Every decision is the one a single pass over all rows in (source, line) order would make: the first row of a query
id is kept (a later one is its pair again, or a reject), the first corpus row of an id owns it, the first-seen copy
of a candidate represents it (pairs' positives before corpus rows), and a query excludes the positives of every pair
with the same query content, the query itself and its bare image. Rows meet only in buckets of their key; the one
global step, query chunking, sees 24 bytes per group of same-content queries (where the group starts and its size),
never rows.
"""
from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.metrics import Metrics
from apache_beam.pvalue import TaggedOutput

from judgemine.schemas import CANDIDATES, REJECTS, part_name, storage, write_table
from judgemine.transforms.common.rejects import reject_row
from judgemine.transforms.ingest.readers import PAIR_FIELDS

BUCKETS = 64  # hash buckets of the keyed checks: the unit of work of each shuffle
REJECTS_TAG = "rejects"
REPEATED_PAIRS = "repeated_pairs"  # the counter of pair rows read again (MergeRepeatedPairs)


def hash_bucket(key: str) -> int:
    return zlib.crc32(key.encode()) % BUCKETS  # stable across processes, unlike hash()


def pool_range(candidate_id: str) -> int:
    """Candidate ids are "c" + hex: their first two hex digits split the pool into 256 ranges, in id order."""
    return int(candidate_id[1:3], 16)


def _rows(tables: Iterable[pa.Table]) -> list[dict[str, Any]]:
    return [row for t in tables for row in t.to_pylist()]


def _in_order(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: (r["source"], r["line"]))


class KeyByBucket(beam.DoFn):
    """A table's rows split by the bucket of one column's key: one (bucket, table) per bucket present (coarse
    elements)."""

    def __init__(self, column: str, bucket_of: Callable[[str], int] = hash_bucket) -> None:
        self._column, self._bucket_of = column, bucket_of

    def process(self, table: pa.Table) -> Iterable[tuple[int, pa.Table]]:
        keys = table.column(self._column).to_pylist()
        buckets = np.fromiter((self._bucket_of(k) for k in keys), np.int64, table.num_rows)
        for b in np.unique(buckets):
            yield int(b), table.take(np.flatnonzero(buckets == b))


class MergeRepeatedPairs(beam.DoFn):
    """Per query id, the first pair row is kept. A later row with its id and the same pair (query and positive as
    read) is that pair again, read once and counted (a triplet or n-tuple file lists a pair once per negative);
    with other content it is a duplicate_query_id reject. An assigned id comes from the pair's content, so rows
    without ids repeat only when their pair does."""

    def __init__(self) -> None:
        self._repeated = Metrics.counter("judgemine.ingest", REPEATED_PAIRS)

    def process(self, keyed: tuple[int, Iterable[pa.Table]]) -> Iterable[Any]:
        first: dict[str, tuple[str, ...]] = {}
        kept, rejects = [], []
        for r in _in_order(_rows(keyed[1])):
            pair, before = tuple(r[k] for k in PAIR_FIELDS), first.get(r["query_id"])
            if before is None:
                first[r["query_id"]] = pair
                kept.append(r)
            elif before == pair:
                self._repeated.inc()
            else:
                rejects.append(reject_row("ingest", "duplicate_query_id", r["source"], r["line"], r["raw"],
                                          r["query_id"]))
        if kept:
            yield pa.Table.from_pylist(kept)
        if rejects:
            yield TaggedOutput(REJECTS_TAG, pa.Table.from_pylist(rejects, schema=REJECTS))


class SplitCorpusIds(beam.DoFn):
    """Corpus rows with their own id go to the id check (main output); rows without one are kept as they are."""

    def __init__(self) -> None:
        self._kept = Metrics.counter("judgemine.ingest", "corpus_rows_kept")

    def process(self, table: pa.Table) -> Iterable[Any]:
        has_id = np.array([bool(c) for c in table.column("corpus_id").to_pylist()], dtype=bool)
        if has_id.any():
            yield table.filter(pa.array(has_id))
        if not has_id.all():
            self._kept.inc(int((~has_id).sum()))
            yield TaggedOutput("without_id", table.filter(pa.array(~has_id)))


class CheckCorpusIds(beam.DoFn):
    """Per corpus id, the first row owns it; a later row with other content under that id is a reject."""

    def __init__(self) -> None:
        self._kept = Metrics.counter("judgemine.ingest", "corpus_rows_kept")

    def process(self, keyed: tuple[int, Iterable[pa.Table]]) -> Iterable[Any]:
        first: dict[str, tuple[str, str, int]] = {}
        kept, rejects = [], []
        for r in _in_order(_rows(keyed[1])):
            owner = first.setdefault(r["corpus_id"], (r["candidate_id"], r["source"], r["line"]))
            if owner[0] != r["candidate_id"]:
                rejects.append(reject_row("ingest", f"duplicate_corpus_id: {r['corpus_id']} has other content at "
                                          f"{owner[1]}:{owner[2]}", r["source"], r["line"], r["raw"]))
                continue
            kept.append(r)
        self._kept.inc(len(kept))
        if kept:
            yield pa.Table.from_pylist(kept)
        if rejects:
            yield TaggedOutput(REJECTS_TAG, pa.Table.from_pylist(rejects, schema=REJECTS))


POOL_FIELDS = ("candidate_id", "text", "image", "payload", "dataset")


def pool_entries(table: pa.Table, from_pairs: bool) -> pa.Table:
    """A kept pair's positive, or a kept corpus row, as a pool entry with its precedence (pairs first, then
    (source, line)): the entry that wins a candidate id is the one a single ordered pass would meet first."""
    if from_pairs:
        table = table.select(["pos_id", "pos_text", "pos_image", "pos_payload", "dataset", "source", "line"]
                             ).rename_columns(
            [*POOL_FIELDS, "source", "line"])
    else:
        table = table.select([*POOL_FIELDS, "source", "line"])
    return table.append_column("from_corpus", pa.array(np.full(table.num_rows, not from_pairs)))


class DedupPoolRange(beam.DoFn):
    """One range of the pool: per candidate id its first-seen entry, sorted by id."""

    def process(self, keyed: tuple[int, Iterable[pa.Table]]) -> Iterable[tuple[int, pa.Table]]:
        pool: dict[str, dict[str, Any]] = {}
        for r in sorted(_rows(keyed[1]), key=lambda r: (r["from_corpus"], r["source"], r["line"])):
            pool.setdefault(r["candidate_id"], {k: r[k] for k in POOL_FIELDS})
        yield keyed[0], pa.Table.from_pylist([pool[k] for k in sorted(pool)], schema=CANDIDATES)


class ChunkPoolRange(beam.DoFn):
    """A sorted range's rows to their candidate part: global rank = the rows of the ranges before it + its own
    rank; part = rank // chunk_size (the counts per range are a side input of 256 numbers)."""

    def __init__(self, chunk_size: int) -> None:
        self._size = chunk_size

    def process(self, ranged: tuple[int, pa.Table], counts: dict[int, int]) -> Iterable[tuple[int, pa.Table]]:
        r, table = ranged
        start = sum(n for other, n in counts.items() if other < r)
        parts = (start + np.arange(table.num_rows)) // self._size
        for part in np.unique(parts):
            yield int(part), table.filter(pa.array(parts == part))


RANGE_LINES = 1 << 16  # queries are ranked in input order by ranges of this many lines of one file


def line_range(source_rank: int, line: int) -> int:
    """The key of a line's range: ranges sort in input order (file rank, then line)."""
    return (int(source_rank) << 40) | (int(line) // RANGE_LINES)


class ExcludeSameContent(beam.DoFn):
    """One bucket of query contents: each query's excluded ids (the positives of every pair with its content,
    the content itself and its bare image); for the chunking, every query's place in the input ("positions": by
    line range, its line) and where each content group starts ("starts": by line range, (bucket, file rank,
    line))."""

    def __init__(self, sources: Sequence[str]) -> None:
        self._rank = {s: i for i, s in enumerate(sorted(sources))}

    def process(self, keyed: tuple[int, Iterable[pa.Table]]) -> Iterable[Any]:
        bucket, tables = keyed
        groups: dict[str, list[dict[str, Any]]] = {}
        for r in _in_order(_rows(tables)):
            groups.setdefault(r["query_content_id"], []).append(r)
        lines: dict[int, list[int]] = {}
        starts: dict[int, list[tuple[int, int, int]]] = {}
        for content, rows in groups.items():
            positives = {r["pos_id"] for r in rows} | {content}
            first = (self._rank[rows[0]["source"]], rows[0]["line"])
            starts.setdefault(line_range(*first), []).append((bucket, *first))
            for r in rows:
                r["excluded_ids"] = sorted(positives | ({r["query_image_id"]} if r["query_image_id"] else set()))
                r["group_source"], r["group_line"] = first
                lines.setdefault(line_range(self._rank[r["source"]], r["line"]), []).append(r["line"])
        yield bucket, pa.Table.from_pylist([r for rows in groups.values() for r in rows])
        for key, found in lines.items():
            yield TaggedOutput("positions", (key, np.asarray(found, np.int64)))
        for key, firsts in starts.items():
            yield TaggedOutput("starts", (key, np.asarray(firsts, np.int64)))


class RankGroupStarts(beam.DoFn):
    """One line range: each group start's rank among all queries in input order (the queries of the ranges before
    it, a side input of one count per range, plus those before it in its range), and so its chunk: rank //
    chunk_size. A group joins the chunk of its first query and is never split; a chunk holds about chunk_size
    queries. Yields per bucket (bucket, rows of (file rank, line, chunk before renumbering))."""

    def __init__(self, chunk_size: int) -> None:
        self._size = chunk_size

    def process(self, keyed: tuple[int, dict[str, list[np.ndarray]]], counts: dict[int, int]
                ) -> Iterable[tuple[int, np.ndarray]]:
        key, joined = keyed
        if not joined["starts"]:
            return
        lines = np.sort(np.concatenate(joined["positions"]))
        before = sum(n for other, n in counts.items() if other < key)
        starts = np.concatenate(joined["starts"])
        chunks = (before + np.searchsorted(lines, starts[:, 2])) // self._size
        for b in np.unique(starts[:, 0]):
            mine = starts[:, 0] == b
            yield int(b), np.column_stack([starts[mine, 1:], chunks[mine]])


def renumber_chunks(assigned: tuple[int, np.ndarray], used: list[int]) -> tuple[int, np.ndarray]:
    """Chunk numbers made dense (0, 1, 2, ... in order): a range of ranks holding no group start makes no chunk.
    `used`: every chunk number some group took (a side input of one number per chunk)."""
    bucket, rows = assigned
    dense = np.searchsorted(np.unique(np.asarray(used, np.int64)), rows[:, 2])
    return bucket, np.column_stack([rows[:, :2], dense])


class ChunkQueries(beam.DoFn):
    """A bucket's queries to their chunks: each row finds its group's chunk by the group's start."""

    def process(self, keyed: tuple[int, dict[str, list[Any]]]) -> Iterable[tuple[int, pa.Table]]:
        tables, assigned = keyed[1]["rows"], keyed[1]["chunks"]
        if not tables:
            return
        chunk_of = {(int(s), int(line)): int(c) for rows in assigned for s, line, c in rows}
        table = pa.concat_tables(tables, promote_options="default")
        starts = zip(table.column("group_source").to_pylist(), table.column("group_line").to_pylist())
        chunks = np.fromiter((chunk_of[s] for s in starts), np.int64, table.num_rows)
        for c in np.unique(chunks):
            yield int(c), table.filter(pa.array(chunks == c))


class WritePart(beam.DoFn):
    """One part file of queries/ or candidates/ from the tables keyed to it, in the artifact's order."""

    def __init__(self, directory: str, schema: pa.Schema, order: Sequence[str]) -> None:
        self._dir, self._schema, self._order = directory, schema, list(order)

    def process(self, keyed: tuple[int, Iterable[pa.Table]]) -> Iterable[int]:
        part, tables = keyed
        table = pa.concat_tables(list(tables), promote_options="default")
        table = table.sort_by([(c, "ascending") for c in self._order])
        storage.make_dirs(self._dir)
        write_table(table, os.path.join(self._dir, part_name(part)), self._schema)
        yield table.num_rows


def write_empty_part(rows: int, directory: str, schema: pa.Schema) -> None:
    """A side with no rows still has its part 0 (empty), as every reader expects."""
    if rows == 0:
        storage.make_dirs(directory)
        write_table(schema.empty_table(), os.path.join(directory, part_name(0)), schema)
