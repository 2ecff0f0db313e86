"""The judge stage's DoFns for `--judge-backend similarity` (transforms/judge/backends/similarity.py): the
retrieval similarity is the score, the query's similarity to its own positive plays s_pos.

Candidate scores are the retrieve stage's (a lossy index such as PQ gives its approximations); s_pos is
the exact inner product of the query's and the positive's L2-normalised vectors from the embed stage, joined
to each chunk by candidate part (transforms/common/candidates.py): a worker holds a chunk's positives only."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.metrics import Metrics
from apache_beam.pvalue import TaggedOutput

from judgemine.schemas import (
    EMBEDDINGS,
    JUDGE_SCORES,
    QUERIES,
    RETRIEVAL,
    read_table,
    write_table,
)
from judgemine.schemas.layout import StageFolder
from judgemine.transforms.common.candidates import PoolLookup, as_bytes, one
from judgemine.transforms.common.chunks import Chunk
from judgemine.transforms.common.progress import StageWork
from judgemine.transforms.judge.base import JudgeInputs


class JudgeBySimilarity(beam.PTransform):
    """The transform SimilarityJudge's `judging()` names: the retrieve chunks scored from the retrieval, each
    joined with its positives' vectors."""

    def __init__(self, inputs: JudgeInputs) -> None:
        super().__init__()
        self._in = inputs

    def expand(self, chunks: beam.PCollection) -> beam.PCollection:
        asked = chunks | "AskForPositives" >> beam.ParDo(AskForPositives(self._in.ingest)).with_outputs(
            "ids", main="chunk")
        positives = asked.ids | "PositiveVectors" >> PoolLookup(self._in.embed.folder("candidates"),
                                                                 EMBEDDINGS, "id", ["vector"])
        return ({"chunk": asked.chunk, "positives": positives} | "JoinPositives" >> beam.CoGroupByKey()
                | "ScoreBySimilarity" >> beam.ParDo(ScoreBySimilarity(self._in.ingest, self._in.embed,
                                                                      self._in.folder, self._in.work)))


class AskForPositives(beam.DoFn):
    """A retrieve chunk to its positives' ids (joined with the embed stage's candidate vectors by chunk); the
    chunk passes on."""

    def __init__(self, ingest: StageFolder) -> None:
        self._ingest = ingest

    def process(self, chunk: Chunk) -> Iterable[Any]:
        pos = read_table(self._ingest.query_part(chunk.index), QUERIES, ["pos_id"])
        yield chunk.index, chunk
        yield TaggedOutput("ids", (chunk.index, as_bytes(pos.column("pos_id"))))


class ScoreBySimilarity(beam.DoFn):
    """A retrieve chunk to the judge stage's part: per query its positive (s_pos), then its candidates in rank
    order with their retrieval similarity, the same rows the model-judged stage writes."""

    def __init__(self, ingest: StageFolder, embed: StageFolder, folder: StageFolder, work: StageWork) -> None:
        self._ingest, self._embed, self._folder, self._work = ingest, embed, folder, work
        self._scored = Metrics.counter("judgemine.judge", "pairs_scored_by_similarity")

    def process(self, joined: tuple[int, dict[str, list[Any]]]) -> None:
        chunk = one(joined[1]["chunk"])
        found = joined[1]["positives"]
        positives = pa.concat_tables(found) if found else None
        pos_row = {cid: i for i, cid in enumerate(positives.column("id").to_pylist())} if positives else {}
        pos_vec = _matrix(positives) if positives else None
        hits = read_table(chunk.path, RETRIEVAL, ["query_id", "candidate_id", "similarity"])
        queries = read_table(self._ingest.query_part(chunk.index), QUERIES,
                             ["query_id", "pos_id"]).to_pylist()
        pos_of = {q["query_id"]: q["pos_id"] for q in queries}
        qids = read_table(self._embed.query_part(chunk.index), EMBEDDINGS)
        qvec = _matrix(qids) if qids.num_rows else None
        qrow = {qid: i for i, qid in enumerate(qids.column("id").to_pylist())}
        rows: dict[str, list[Any]] = {"query_id": [], "candidate_id": [], "is_positive": [], "score": []}
        last = None
        for qid, cid, sim in zip(*(hits.column(c).to_pylist() for c in ("query_id", "candidate_id", "similarity"))):
            if qid != last:
                last = qid
                pid = pos_of[qid]
                row = pos_row.get(pid)  # None: a positive the embedder could not read (image only)
                self._append(rows, qid, pid, True, float("nan") if row is None or qvec is None or pos_vec is None else
                             float(qvec[qrow[qid]] @ pos_vec[row]))
            self._append(rows, qid, cid, False, sim)
        self._scored.inc(len(rows["score"]))
        self._work.add(len(rows["score"]))
        table = pa.table({**{k: rows[k] for k in ("query_id", "candidate_id", "is_positive")},
                          "score": pa.array(rows["score"], pa.float32())})
        write_table(table, self._folder.own_part(chunk.index), JUDGE_SCORES)

    @staticmethod
    def _append(rows: dict[str, list[Any]], qid: str, cid: str, positive: bool, score: float) -> None:
        rows["query_id"].append(qid)
        rows["candidate_id"].append(cid)
        rows["is_positive"].append(positive)
        rows["score"].append(score)


def _matrix(table: pa.Table) -> np.ndarray:
    dim = table.schema.field("vector").type.list_size
    return table.column("vector").combine_chunks().values.to_numpy().reshape(-1, dim)
