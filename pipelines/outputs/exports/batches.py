"""Batches from the retrieval graph (pipelines/outputs/exports/graph_batches.py): the shard rows in batch order,
each with its `batch` number and an `anchor`/`positive` pair, every batch but the last `batch_size` rows. Read it
without shuffling, batch_size rows at a time: a sentence-transformers trainer loads it with `datasets` (keep
`anchor` and `positive`, sequential batches), and `ShardDataset([path])` reads it as a shard file, in its order,
negatives and judge scores included. Text only.

Memory is bounded for any run: the rows are read once and spilled to a temporary Arrow file while their ids are
hashed (Python's `hash` of the id: equal ids meet; two positives or candidates that collide only add a constraint,
never let a false negative into a batch, and two query ids that collide stop the export), the graph is held as
arrays, and the rows are written in batch order through an external bucket sort on their position (a bucket of rows
in memory at a time).
"""
from __future__ import annotations

import json
import os
import tempfile
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from judgemine.pipelines.outputs.exports.base import Exporter, distinct
from judgemine.pipelines.outputs.exports.graph_batches import Batched, Graph, csr, forbidden_csr, graph_batches
from judgemine.pipelines.run.artifacts import require_stage
from judgemine.schemas import JUDGE_SCORES, SHARDS, list_parts, read_table, storage
from judgemine.schemas.layout import RunLayout
from judgemine.schemas.tables import BATCH_COLUMNS, BATCH_SIZE_KEY, shard_metadata
from judgemine.transforms.common.options import above, setting
from judgemine.transforms.mine.rule import MiningRule, likely_false_negatives

SPILL_ROWS = 1024  # rows a spill record batch holds
EDGE_ROWS = 8192  # rows whose edges are looked up at once
BUCKET_ROWS = 16384  # the fewest rows a bucket of the external sort holds (at most 128 buckets open)


@dataclass(frozen=True)
class BatchesOptions:
    batch_size: int = setting(64, (), "queries per batch (B3 trained with 64)", range=above(1))


class _Rows:
    """Pass one: every row spilled as it comes, its ids kept as 64-bit hashes."""

    def __init__(self, spill: str) -> None:
        self.spill = spill
        self.schema: pa.Schema | None = None
        self.positives, self.queries = array("q"), array("q")
        self.neg_counts, self.negatives = array("i"), array("q")
        self.fallback = bytearray()
        self._writer: ipc.RecordBatchFileWriter | None = None

    def read(self, rows: Iterator[dict[str, Any]]) -> None:
        buffer: list[dict[str, Any]] = []
        for row in rows:
            self.positives.append(hash(row["pos_id"]))
            self.queries.append(hash(row["query_id"]))
            negs = distinct(row["neg_ids"])
            self.neg_counts.append(len(negs))
            self.negatives.extend(hash(c) for c in negs)
            self.fallback.append(row["fallback"])
            buffer.append(row)
            if len(buffer) == SPILL_ROWS:
                self._flush(buffer)
        self._flush(buffer)
        if self._writer is not None:
            self._writer.close()

    def _flush(self, buffer: list[dict[str, Any]]) -> None:
        if not buffer:
            return
        if self._writer is None:
            self.schema = pa.schema([f for f in SHARDS if f.name in buffer[0]])
            self._writer = ipc.new_file(self.spill, self.schema)
        self._writer.write_table(pa.Table.from_pylist(buffer, schema=self.schema))
        buffer.clear()


class BatchesExport(Exporter):
    """Fallback rows are skipped by default, as in every format but unime: their negatives are random."""
    name = "batches"
    suffix = "parquet"
    binary = True
    text_only = True
    Options = BatchesOptions
    dropped_as = "left out of every batch (too few rows fit beside them: false negatives or the same positive)"

    def prepare(self, output: str) -> None:
        """The judge stage as committed (every part in place with its recorded content, none foreign) and the run's
        own mining rule: a query's likely false negatives are its scores under that rule."""
        require_stage(output, "judge")
        layout = RunLayout(output)
        self._rule = MiningRule(**json.loads(storage.read_text(layout.manifest))["mining"]["rule"])
        self._judge_parts = list_parts(layout.stage("judge").path)

    def write(self, rows: Iterator[dict[str, Any]], f: BinaryIO, k: int) -> int:
        with tempfile.TemporaryDirectory(prefix="judgemine-batches-") as spill:
            read = _Rows(os.path.join(spill, "rows.arrow"))
            read.read(rows)
            if read.schema is None:
                pq.write_table(pa.table({c.name: pa.array([], c.type) for c in BATCH_COLUMNS}), f)
                return 0
            batched = graph_batches(self._graph(read), self.own.batch_size)
            self.dropped = len(batched.left_out)
            fallback = int(np.frombuffer(read.fallback, np.uint8)[batched.order].sum())
            metadata = {**shard_metadata("", k, fallback), BATCH_SIZE_KEY: str(self.own.batch_size)}
            schema = pa.schema([*BATCH_COLUMNS, *read.schema]).with_metadata(
                {**SHARDS.metadata, **{key.encode(): v.encode() for key, v in metadata.items()}})
            return self._write_in_order(read.spill, read.schema, batched, schema, f, spill)

    def _graph(self, read: _Rows) -> Graph:
        positives = np.frombuffer(read.positives, np.int64)
        keys, first_row, inverse = np.unique(positives, return_index=True, return_inverse=True)
        first, group = first_row.astype(np.int32), inverse.astype(np.int32).ravel()
        counts = np.frombuffer(read.neg_counts, np.int32)
        ptr = np.zeros(len(counts) + 1, np.int64)
        np.cumsum(counts, out=ptr[1:])
        owners, kept = [], np.zeros(len(counts), np.int64)
        for start in range(0, len(counts), EDGE_ROWS):  # a slice of rows at a time: temporaries stay bounded
            stop = min(len(counts), start + EDGE_ROWS)
            owner = _lookup(keys, first, np.frombuffer(read.negatives, np.int64)[ptr[start]:ptr[stop]])
            row = np.repeat(np.arange(start, stop, dtype=np.int32), counts[start:stop])
            keep = owner >= 0
            keep[keep] = group[owner[keep]] != group[row[keep]]  # an edge to a row with the same positive is none
            owners.append(owner[keep])
            kept[start:stop] = np.bincount(row[keep] - start, minlength=stop - start)
        del read.negatives
        queries = np.frombuffer(read.queries, np.int64)
        by_query = np.argsort(queries, kind="stable").astype(np.int32)
        if len(queries) > 1 and (queries[by_query[1:]] == queries[by_query[:-1]]).any():
            # a shard row's query id is unique: equal hashes are a collision, and a flagged false negative could
            # then be matched to the wrong query
            raise RuntimeError("two query ids of the shards share a 64-bit hash: export again (a new process hashes "
                               "them anew)")
        found = [self._forbidden_pairs(part, queries[by_query], by_query, keys, first, group)
                 for part in self._judge_parts]
        pairs = np.concatenate([np.empty((0, 2), np.int32), *found])
        del found, queries, by_query
        neighbours = csr(kept, np.concatenate([np.empty(0, np.int32), *owners]))
        del owners
        return Graph(group, *neighbours, *forbidden_csr(pairs, len(keys)))

    def _forbidden_pairs(self, part: str, query_keys: np.ndarray, query_rows: np.ndarray, keys: np.ndarray,
                         first: np.ndarray, group: np.ndarray) -> np.ndarray:
        """(query's group, false negative's group) for each of a judge part's likely false negatives that is some
        row's positive: the judge stage's scores under the run's rule, one part in memory at a time."""
        t = read_table(part, JUDGE_SCORES)
        positive = t.filter(t["is_positive"])
        candidates = t.filter(pc.invert(t["is_positive"]))
        at = pc.index_in(candidates["query_id"], value_set=positive["query_id"]).to_numpy(zero_copy_only=False)
        pos_scores = np.full(len(at), np.nan)
        found = ~np.isnan(at)
        pos_scores[found] = positive["score"].to_numpy()[at[found].astype(np.int64)]
        flagged = likely_false_negatives(candidates["score"].to_numpy().astype(np.float64), pos_scores, self._rule)
        flagged = candidates.filter(pa.array(flagged))
        candidate_owner = _lookup(keys, first, np.asarray([hash(c) for c in flagged["candidate_id"].to_pylist()],
                                                          np.int64))
        query_row = _lookup(query_keys, query_rows, np.asarray([hash(q) for q in flagged["query_id"].to_pylist()],
                                                               np.int64))
        keep = (candidate_owner >= 0) & (query_row >= 0)
        return np.stack([group[query_row[keep]], group[candidate_owner[keep]]], axis=1).astype(np.int32)

    @staticmethod
    def _write_in_order(rows: str, schema: pa.Schema, batched: Batched, out_schema: pa.Schema, f: BinaryIO,
                        spill: str) -> int:
        """An external bucket sort of the spilled rows on their position in batch order."""
        order, batch = batched.order, batched.batch
        position = np.full(len(order) + len(batched.left_out), -1, np.int64)
        position[order] = np.arange(len(order))
        bucket_rows = max(BUCKET_ROWS, -(-len(order) // 128))
        writers: dict[int, ipc.RecordBatchFileWriter] = {}
        spilled_schema = schema.append(pa.field("_position", pa.int64()))
        start = 0
        with pa.OSFile(rows) as source:  # read a batch at a time (a memory map's pages would count as resident)
            spilled = ipc.open_file(source)
            for i in range(spilled.num_record_batches):
                chunk = spilled.get_batch(i)
                at = position[start:start + chunk.num_rows]
                start += chunk.num_rows
                chunk = pa.Table.from_batches([chunk]).append_column("_position", pa.array(at))
                for b in np.unique(at[at >= 0] // bucket_rows):
                    if b not in writers:
                        writers[b] = ipc.new_file(os.path.join(spill, f"bucket-{b:05d}.arrow"), spilled_schema)
                    writers[b].write_table(chunk.filter(pa.array((at >= 0) & (at // bucket_rows == b))))
        for w in writers.values():
            w.close()
        with pq.ParquetWriter(f, out_schema, compression="zstd") as out:
            for b in sorted(writers):
                with pa.OSFile(os.path.join(spill, f"bucket-{b:05d}.arrow")) as source:
                    bucket = ipc.open_file(source).read_all()
                bucket = bucket.take(pc.sort_indices(bucket["_position"]))
                numbers = batch[bucket["_position"].to_numpy()]
                bucket = bucket.drop_columns(["_position"])
                out.write_table(pa.Table.from_arrays(
                    [pa.array(numbers, pa.int32()), bucket["query_text"], bucket["pos_text"], *bucket.columns],
                    schema=out_schema))
        return len(order)


def _lookup(keys: np.ndarray, values: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """values[i] where keys[i] == wanted (keys sorted, values int32), else -1."""
    if not len(keys):
        return np.full(len(wanted), -1, np.int32)
    at = np.searchsorted(keys, wanted)
    at[at == len(keys)] = 0
    return np.where(keys[at] == wanted, values[at], np.int32(-1)).astype(np.int32)
