"""The judge stage's DoFns around RunInference: a retrieve chunk to what it needs from the pool and the score
cache (joined to it by chunk, transforms/common/candidates.py and score_cache.py), then to the pairs to judge
(the cached ones filled in, the rest in groups), and the scores to the chunk's part file."""
from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.metrics import Metrics
from apache_beam.pvalue import TaggedOutput

from judgemine.schemas import JUDGE_SCORES, QUERIES, RETRIEVAL, read_table, write_table
from judgemine.schemas.layout import StageFolder
from judgemine.transforms.common.candidates import as_bytes, one, sides_of
from judgemine.transforms.common.chunks import Chunk
from judgemine.transforms.common.progress import StageWork
from judgemine.transforms.common.sides import Side
from judgemine.transforms.judge.handler import JudgeRequest, JudgeResult
from judgemine.transforms.judge.score_cache import pair_key

NAMESPACE = "judgemine.judge"
log = logging.getLogger(__name__)


def _chunk_rows(ingest: StageFolder, chunk: Chunk) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    hits = read_table(chunk.path, RETRIEVAL, ["query_id", "candidate_id"]).to_pylist()
    queries = {q["query_id"]: q for q in read_table(
        ingest.query_part(chunk.index), QUERIES,
        ["query_id", "query_text", "query_image", "query_payload", "pos_id", "pos_text", "pos_image", "pos_payload"]
    ).to_pylist()}
    return hits, queries


def chunk_pairs(hits: list[dict[str, Any]], queries: dict[str, dict[str, Any]]
                ) -> Iterable[tuple[dict[str, Any], str, bool]]:
    """A chunk's pairs in order: per query its positive, then its candidates in rank order."""
    last = None
    for h in hits:
        q = queries[h["query_id"]]
        if h["query_id"] != last:
            last = h["query_id"]
            yield q, q["pos_id"], True
        yield q, h["candidate_id"], False


def chunk_keys(hits: list[dict[str, Any]], queries: dict[str, dict[str, Any]], payloads: dict[str, str],
               judge_id: str, prompt_id: str) -> list[str]:
    """Each pair's score-cache key, in chunk_pairs order: the query's and the candidate's exact payloads (a
    positive's its own, a candidate's the pool entry's)."""
    return [pair_key(judge_id, prompt_id, q["query_payload"], q["pos_payload"] if positive else payloads[cid])
            for q, cid, positive in chunk_pairs(hits, queries)]


class AskForChunk(beam.DoFn):
    """A retrieve chunk to its candidates' ids, keyed by the chunk, for the pool join; the chunk passes on."""

    def __init__(self, ingest: StageFolder) -> None:
        self._ingest = ingest

    def process(self, chunk: Chunk) -> Iterable[Any]:
        hits = read_table(chunk.path, RETRIEVAL, ["candidate_id"])
        yield chunk.index, chunk
        yield TaggedOutput("ids", (chunk.index, as_bytes(hits.column("candidate_id"))))


class KeyChunkPairs(beam.DoFn):
    """A chunk and its candidates' pool rows (joined to it by chunk) to its pairs' cache keys, which go on to the
    score cache join; the chunk and its candidates pass on beside them."""

    def __init__(self, ingest: StageFolder, judge_id: str, prompt_id: str) -> None:
        self._ingest, self._judge_id, self._prompt_id = ingest, judge_id, prompt_id

    def process(self, joined: tuple[int, dict[str, list[Any]]]) -> Iterable[Any]:
        index, sides = joined
        chunk = one(sides["chunk"])
        tables = list(sides["sides"])
        hits, queries = _chunk_rows(self._ingest, chunk)
        payloads = {cid: p for t in tables for cid, p in zip(t.column("candidate_id").to_pylist(),
                                                             t.column("payload").to_pylist())}
        keys = chunk_keys(hits, queries, payloads, self._judge_id, self._prompt_id)
        yield index, (chunk, tables, keys)
        yield TaggedOutput("keys", (index, keys))


class BuildJudgeRequests(beam.DoFn):
    """A chunk, its candidates' sides and its cached scores (joined to it by chunk) to the pairs to judge.
    Pairs whose score is in the cache are filled in here and never reach the model. The rest are cut into groups
    by the chunk's own queries (whole queries, at least `group_pairs` pairs of the chunk each), so a group is the
    same pairs whether the chunk runs whole or resumes after a kill."""

    def __init__(self, ingest: StageFolder, group_pairs: int, work: StageWork) -> None:
        self._ingest, self._group_pairs, self._work = ingest, group_pairs, work
        self._cached = Metrics.counter(NAMESPACE, "pairs_cached")
        self._todo = Metrics.counter(NAMESPACE, "pairs_to_judge")
        self._repeated = Metrics.counter(NAMESPACE, "pairs_repeated")

    def process(self, joined: tuple[int, dict[str, list[Any]]]) -> Iterable[JudgeRequest]:
        index, sides = joined[0], joined[1]
        chunk, tables, keys = one(sides["pairs"])
        pool = sides_of(tables)
        cached: dict[str, float] = {k: v for found in sides["cached"] for k, v in found.items()}
        hits, queries = _chunk_rows(self._ingest, chunk)
        req = JudgeRequest(index)
        asked: dict[str, int] = {}  # key -> its index in req.todo
        grouped = 0  # pairs of the chunk in the groups closed so far
        for (q, cid, positive), key in zip(chunk_pairs(hits, queries), keys):
            if positive and self._group_pairs and len(req.query_ids) - grouped >= self._group_pairs:
                grouped = len(req.query_ids)
                req.groups.append(len(req.todo))
            req.query_ids.append(q["query_id"])
            req.candidate_ids.append(cid)
            req.is_positive.append(positive)
            known = cached.get(key)
            req.known.append(float("nan") if known is None else known)
            if known is None and key in asked:
                req.repeats.append((len(req.query_ids) - 1, asked[key]))
            elif known is None:
                asked[key] = len(req.todo)
                req.todo.append(len(req.query_ids) - 1)
                req.keys.append(key)
                req.queries.append(Side(q["query_text"], q["query_image"]))
                req.candidates.append(Side(q["pos_text"], q["pos_image"]) if positive else pool[cid])
        req.groups = sorted({*req.groups, len(req.todo)} - {0})
        self._todo.inc(len(req.todo))
        self._cached.inc(len(req.query_ids) - len(req.todo) - len(req.repeats))
        self._repeated.inc(len(req.repeats))
        self._work.add(len(req.query_ids) - len(req.todo))  # known or repeated: done already
        yield req


class WriteScores(beam.DoFn):
    """Writes the chunk's part (its new scores are in the cache already: the handler keeps each group as it is
    judged). The backend's counters (vLLM's prefix-cache tokens) become Beam counters of the same names."""

    def __init__(self, folder: StageFolder, reports: tuple[str, ...]) -> None:
        self._folder = folder
        self._judged = Metrics.counter(NAMESPACE, "pairs_judged")
        self._too_long = Metrics.counter(NAMESPACE, "pairs_too_long")
        self._reports = {name: Metrics.counter(NAMESPACE, name) for name in reports}

    def process(self, result: JudgeResult) -> None:
        r = result.request
        refused = np.isnan(result.scores)  # prompts over the judge's context: not cached, counted
        scores = np.asarray(r.known, np.float32)
        scores[r.todo] = result.scores
        for position, asked in r.repeats:
            scores[position] = result.scores[asked]
        self._judged.inc(len(r.todo))
        self._too_long.inc(int(refused.sum()))
        if refused.any():
            log.warning("judge: chunk %d: %d pairs longer than the judge's context, not scored", r.chunk_index,
                        int(refused.sum()))
        for name, counter in self._reports.items():
            counter.inc(int(result.counters.get(name, 0)))
        table = pa.table({"query_id": r.query_ids, "candidate_id": r.candidate_ids, "is_positive": r.is_positive,
                          "score": pa.array(scores, pa.float32())})
        write_table(table, self._folder.own_part(r.chunk_index), JUDGE_SCORES)
