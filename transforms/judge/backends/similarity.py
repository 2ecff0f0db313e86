"""`--judge-backend similarity`: no judge model; the retrieval similarity is the score, the query's
similarity to its own positive plays s_pos. What sentence-transformers' miner does without a cross-encoder,
and the cheap mode for runs too large to judge: every mining rule works on it unchanged.

Candidate scores are the retrieve stage's (a lossy index such as PQ gives its approximations); s_pos is
the exact inner product of the query's and the positive's L2-normalised vectors from the embed stage. Only
the positives' vectors are held, once per worker process (P x d float32 for P positives)."""
from __future__ import annotations

import os
from typing import Any, ClassVar

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.metrics import Metrics
from apache_beam.utils.shared import Shared

from judgemine.schemas import (
    EMBEDDINGS,
    JUDGE_SCORES,
    QUERIES,
    RETRIEVAL,
    list_parts,
    part_name,
    read_table,
    write_table,
)
from judgemine.transforms.common.chunks import Chunk
from judgemine.transforms.judge.base import Capabilities, JudgeKind, NoOptions


class SimilarityJudge(JudgeKind):
    name: ClassVar[str] = "similarity"
    capabilities: ClassVar[Capabilities] = Capabilities(images=True, needs_model=False)
    Options: ClassVar[type] = NoOptions


class _Positives:
    """The embed stage's vector of every positive of the run, by candidate id."""

    def __init__(self, ingest_dir: str, embed_dir: str) -> None:
        wanted = pa.chunked_array([read_table(p, QUERIES, ["pos_id"]).column("pos_id") for p in
                                   list_parts(os.path.join(ingest_dir, "queries"))] or [pa.array([], pa.string())])
        wanted = pc.unique(wanted)
        ids: list[str] = []
        blocks: list[np.ndarray] = []
        for path in list_parts(os.path.join(embed_dir, "candidates")):
            table = read_table(path, EMBEDDINGS)
            table = table.filter(pc.is_in(table.column("id"), value_set=wanted))
            if table.num_rows:
                dim = table.schema.field("vector").type.list_size
                ids.extend(table.column("id").to_pylist())
                blocks.append(table.column("vector").combine_chunks().values.to_numpy().reshape(-1, dim))
        self.row = {cid: i for i, cid in enumerate(ids)}
        self.vectors = np.concatenate(blocks) if blocks else np.zeros((0, 0), np.float32)


class ScoreBySimilarity(beam.DoFn):
    """A retrieve chunk to the judge stage's part: per query its positive (s_pos), then its candidates in rank
    order with their retrieval similarity, the same rows the model-judged stage writes."""

    def __init__(self, ingest_dir: str, embed_dir: str, directory: str, shared: Shared) -> None:
        self._ingest_dir, self._embed_dir, self._dir, self._shared = ingest_dir, embed_dir, directory, shared
        self._scored = Metrics.counter("judgemine.judge", "pairs_scored_by_similarity")

    def setup(self) -> None:
        self._pos = self._shared.acquire(lambda: _Positives(self._ingest_dir, self._embed_dir),
                                         tag=f"positives:{self._embed_dir}")

    def process(self, chunk: Chunk) -> None:
        hits = read_table(chunk.path, RETRIEVAL, ["query_id", "candidate_id", "similarity"])
        queries = read_table(os.path.join(self._ingest_dir, "queries", part_name(chunk.index)), QUERIES,
                             ["query_id", "pos_id"]).to_pylist()
        pos_of = {q["query_id"]: q["pos_id"] for q in queries}
        qids = read_table(os.path.join(self._embed_dir, "queries", part_name(chunk.index)), EMBEDDINGS)
        dim = qids.schema.field("vector").type.list_size
        qvec = qids.column("vector").combine_chunks().values.to_numpy().reshape(-1, dim) if qids.num_rows else None
        qrow = {qid: i for i, qid in enumerate(qids.column("id").to_pylist())}
        rows: dict[str, list[Any]] = {"query_id": [], "candidate_id": [], "is_positive": [], "score": []}
        last = None
        for qid, cid, sim in zip(*(hits.column(c).to_pylist() for c in ("query_id", "candidate_id", "similarity"))):
            if qid != last:
                last = qid
                pid = pos_of[qid]
                row = self._pos.row.get(pid)  # None: a positive the embedder could not read (image only)
                self._append(rows, qid, pid, True, float("nan") if row is None else
                             float(qvec[qrow[qid]] @ self._pos.vectors[row]))
            self._append(rows, qid, cid, False, sim)
        self._scored.inc(len(rows["score"]))
        table = pa.table({**{k: rows[k] for k in ("query_id", "candidate_id", "is_positive")},
                          "score": pa.array(rows["score"], pa.float32())})
        write_table(table, os.path.join(self._dir, part_name(chunk.index)), JUDGE_SCORES)

    @staticmethod
    def _append(rows: dict[str, list[Any]], qid: str, cid: str, positive: bool, score: float) -> None:
        rows["query_id"].append(qid)
        rows["candidate_id"].append(cid)
        rows["is_positive"].append(positive)
        rows["score"].append(score)
