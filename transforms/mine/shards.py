"""The mine stage's DoFn: one chunk of queries through the mining rule (mine/rule.py) to one trainer shard."""
from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.metrics import Metrics

from judgemine.schemas import (
    EMBEDDINGS,
    JUDGE_SCORES,
    QUERIES,
    RETRIEVAL,
    SHARDS,
    read_table,
    shard_metadata,
    shard_name,
    write_table,
)
from judgemine.schemas.layout import StageFolder
from judgemine.transforms.common.candidates import as_bytes, one, sides_of
from judgemine.transforms.common.chunks import Chunk
from judgemine.transforms.common.progress import StageWork
from judgemine.transforms.common.rejects import reject_row
from judgemine.transforms.mine.rule import (
    FILTERS,
    MiningRule,
    NoCandidates,
    extra_positives,
    query_rng,
    select_negatives,
)


@dataclass(frozen=True)
class RankedCandidates:
    """A chunk's retrieved candidates joined with their judge scores, in (query, rank) order, as columns: no
    per-candidate Python object (a chunk holds K x 4,096 of them)."""
    spans: dict[str, tuple[int, int]]  # query id -> its [start, end) rows
    ids: list[str]
    ranks: list[int]
    similarities: list[float]
    scores: np.ndarray  # float32; NaN where the judge refused the pair (prompt longer than its context)
    positive_scores: dict[tuple[str, str], float]  # (query id, positive id) -> score


def ranked_candidates(retrieved: pa.Table, judged: pa.Table) -> RankedCandidates:
    negatives = judged.filter(pc.invert(judged.column("is_positive"))).select(["query_id", "candidate_id", "score"])
    table = retrieved.join(negatives, ["query_id", "candidate_id"], join_type="left outer")
    table = table.sort_by([("query_id", "ascending"), ("rank", "ascending")])
    if table.column("score").null_count:
        raise RuntimeError("a retrieved candidate has no judge score: the judge stage is not this retrieval's")
    qids = as_bytes(table.column("query_id"))
    starts = np.flatnonzero(np.r_[True, qids[1:] != qids[:-1]]) if len(qids) else np.zeros(0, np.int64)
    ends = np.r_[starts[1:], len(qids)].astype(np.int64)
    positives = judged.filter(judged.column("is_positive"))
    return RankedCandidates(
        dict(zip(table.column("query_id").take(pa.array(starts)).to_pylist(), zip(starts.tolist(), ends.tolist()))),
        table.column("candidate_id").to_pylist(), table.column("rank").to_pylist(),
        table.column("similarity").to_pylist(), table.column("score").to_numpy(),
        dict(zip(zip(positives.column("query_id").to_pylist(), positives.column("candidate_id").to_pylist()),
                 positives.column("score").to_pylist())))


class AskForCandidates(beam.DoFn):
    """A query chunk to its retrieved candidates' ids (joined with the pool's texts and images by chunk); the
    chunk passes on."""

    def __init__(self, retrieve: StageFolder) -> None:
        self._retrieve = retrieve

    def process(self, chunk: Chunk) -> Iterable[Any]:
        hits = read_table(self._retrieve.query_part(chunk.index), RETRIEVAL, ["candidate_id"])
        yield chunk.index, chunk
        yield beam.pvalue.TaggedOutput("ids", (chunk.index, as_bytes(hits.column("candidate_id"))))


class MineChunk(beam.DoFn):
    """One chunk of queries (with its candidates' sides, joined by chunk) to one shard; queries the rule cannot
    serve go to the rejects output."""

    def __init__(self, stages: dict[str, StageFolder], shards_dir: str, num_shards: int, rule: MiningRule,
                 image_root: str, work: StageWork) -> None:
        self._stages, self._shards_dir, self._num_shards, self._rule = stages, shards_dir, num_shards, rule
        self._image_root, self._work = image_root, work
        self._fallback = Metrics.counter("judgemine.mine", "fallback_rows")
        self._filtered = Metrics.counter("judgemine.mine", "false_negatives_filtered")
        self._retrieved = Metrics.counter("judgemine.mine", "retrieved")
        self._unjudged = Metrics.counter("judgemine.mine", "candidates_too_long")
        self._repeated = Metrics.counter("judgemine.mine", "rows_repeated")
        self._skipped = {name: Metrics.counter("judgemine.mine", f"skipped_{name}") for name in FILTERS}

    def _read(self, stage: str, chunk: Chunk, schema: pa.Schema) -> pa.Table:
        """Chunk `chunk.index` of a stage's part files."""
        return read_table(self._stages[stage].query_part(chunk.index), schema)

    def process(self, joined: tuple[int, dict[str, list[Any]]]) -> Iterable[Any]:
        chunk, pool = one(joined[1]["chunk"]), sides_of(joined[1]["sides"])
        embedded = read_table(chunk.path, EMBEDDINGS, ["id"]).column("id").to_pylist()
        queries = {q["query_id"]: q for q in self._read("ingest", chunk, QUERIES).to_pylist()}
        c = ranked_candidates(self._read("retrieve", chunk, RETRIEVAL), self._read("judge", chunk, JUDGE_SCORES))
        rows: list[dict[str, Any]] = []
        unjudged = 0
        skipped = dict.fromkeys(FILTERS, 0)
        for qid in embedded:
            q = queries[qid]
            start, end = c.spans.get(qid, (0, 0))
            # a candidate the judge refused (its prompt longer than the judge's context) is no negative
            found = (start + np.flatnonzero(~np.isnan(c.scores[start:end]))).tolist()
            unjudged += end - start - len(found)
            cand_scores = c.scores[found].tolist()
            try:
                if end == start:
                    raise NoCandidates("no_candidates: retrieval found no eligible candidate")
                pos_score = c.positive_scores[(qid, q["pos_id"])]
                if math.isnan(pos_score):
                    raise NoCandidates("prompt_too_long: the query/positive prompt is longer than the judge's "
                                       "context")
                if not found:
                    raise NoCandidates("no_candidates: every retrieved candidate's prompt is longer than the "
                                       "judge's context")
                rule = self._rule
                sel = select_negatives(cand_scores, pos_score, rule, partial(query_rng, rule.seed, qid))
                if sel.fallback and rule.on_no_negatives == "reject":
                    raise NoCandidates("no_negatives_after_filter: the filters left no candidate")
            except NoCandidates as e:
                row = json.dumps({k: v for k, v in q.items() if k != "excluded_ids"}, ensure_ascii=False)
                yield beam.pvalue.TaggedOutput("rejects", reject_row("mine", str(e), q["source"], q["line"], row, qid))
                continue
            for name, n in sel.skipped.items():
                skipped[name] += n
            if sel.fallback:
                self._fallback.inc()
            elif sel.kept_after_filter < rule.num_negatives:
                self._repeated.inc()
            picked = [found[p] for p in sel.positions]
            sides = [pool[c.ids[r]] for r in picked]
            extra = [found[p] for p in extra_positives(cand_scores, pos_score)] if rule.false_negatives_as_positives \
                else []
            extra_sides = [pool[c.ids[r]] for r in extra]
            rows.append({
                "query_id": qid, "query_text": q["query_text"], "query_image": q["query_image"],
                "pos_id": q["pos_id"], "pos_text": q["pos_text"], "pos_image": q["pos_image"], "pos_score": pos_score,
                "neg_ids": [c.ids[r] for r in picked], "neg_texts": [s.text for s in sides],
                "neg_images": [s.image for s in sides],
                "neg_scores": [1.0 if sel.fallback else cand_scores[p] for p in sel.positions],
                "neg_ranks": [c.ranks[r] for r in picked], "neg_similarities": [c.similarities[r] for r in picked],
                "num_unique_negatives": len(set(sel.positions)), "num_candidates": len(found),
                "num_false_negatives": sel.skipped["beta"] + sel.skipped["relative_margin"],
                "fallback": sel.fallback, "dataset": q["dataset"],
                "extra_pos_ids": [c.ids[r] for r in extra], "extra_pos_texts": [s.text for s in extra_sides],
                "extra_pos_images": [s.image for s in extra_sides],
                "extra_pos_scores": [float(c.scores[r]) for r in extra]})
        self._filtered.inc(skipped["beta"] + skipped["relative_margin"])
        for name, counter in self._skipped.items():
            counter.inc(skipped[name])
        self._unjudged.inc(unjudged)
        self._retrieved.inc(sum(end - start for start, end in (c.spans.get(q, (0, 0)) for q in embedded)))
        write_table(pa.Table.from_pylist(rows, schema=SHARDS),
                    os.path.join(self._shards_dir, shard_name(chunk.index, self._num_shards)), SHARDS,
                    shard_metadata(self._image_root, self._rule.num_negatives, sum(r["fallback"] for r in rows)))
        self._work.add(len(embedded))
