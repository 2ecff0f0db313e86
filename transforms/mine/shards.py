"""The mine stage's DoFn: one chunk of queries through the mining rule (mine/rule.py) to one trainer shard."""
from __future__ import annotations

import json
import math
import os
from functools import partial
from typing import Any, Iterable

import apache_beam as beam
import pyarrow as pa
from apache_beam.metrics import Metrics

from judgemine.schemas import (
    EMBEDDINGS,
    JUDGE_SCORES,
    QUERIES,
    RETRIEVAL,
    SHARDS,
    part_name,
    read_table,
    shard_metadata,
    shard_name,
    write_table,
)
from judgemine.transforms.common.candidates import as_bytes, one, sides_of
from judgemine.transforms.common.chunks import Chunk
from judgemine.transforms.common.rejects import reject_row
from judgemine.transforms.mine.rule import FILTERS, MiningRule, NoCandidates, query_rng, select_negatives


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    """Row dicts built column-wise (several times faster than Table.to_pylist for a million short rows)."""
    names = table.column_names
    return [dict(zip(names, values)) for values in zip(*(table.column(n).to_pylist() for n in names))]


class AskForCandidates(beam.DoFn):
    """A query chunk to its retrieved candidates' ids (joined with the pool's texts and images by chunk); the
    chunk passes on."""

    def __init__(self, retrieve_dir: str) -> None:
        self._dir = retrieve_dir

    def process(self, chunk: Chunk) -> Iterable[Any]:
        hits = read_table(os.path.join(self._dir, part_name(chunk.index)), RETRIEVAL, ["candidate_id"])
        yield chunk.index, chunk
        yield beam.pvalue.TaggedOutput("ids", (chunk.index, as_bytes(hits.column("candidate_id"))))


class MineChunk(beam.DoFn):
    """One chunk of queries (with its candidates' sides, joined by chunk) to one shard; queries the rule cannot
    serve go to the rejects output."""

    def __init__(self, stage_dirs: dict[str, str], shards_dir: str, num_shards: int, rule: MiningRule,
                 image_root: str) -> None:
        self._dirs, self._shards_dir, self._num_shards, self._rule = stage_dirs, shards_dir, num_shards, rule
        self._image_root = image_root
        self._fallback = Metrics.counter("judgemine.mine", "fallback_rows")
        self._filtered = Metrics.counter("judgemine.mine", "false_negatives_filtered")
        self._retrieved = Metrics.counter("judgemine.mine", "retrieved")
        self._unjudged = Metrics.counter("judgemine.mine", "candidates_too_long")
        self._repeated = Metrics.counter("judgemine.mine", "rows_repeated")
        self._skipped = {name: Metrics.counter("judgemine.mine", f"skipped_{name}") for name in FILTERS}

    def _read(self, stage: str, chunk: Chunk, schema: pa.Schema) -> pa.Table:
        """Chunk `chunk.index` of a stage's part files (ingest's queries live in its queries/ folder)."""
        folder = self._dirs[stage] if stage != "ingest" else os.path.join(self._dirs[stage], "queries")
        return read_table(os.path.join(folder, part_name(chunk.index)), schema)

    def process(self, joined: tuple[int, dict[str, list[Any]]]) -> Iterable[Any]:
        chunk, pool = one(joined[1]["chunk"]), sides_of(joined[1]["sides"])
        embedded = read_table(chunk.path, EMBEDDINGS, ["id"]).column("id").to_pylist()
        queries = {q["query_id"]: q for q in self._read("ingest", chunk, QUERIES).to_pylist()}
        hits: dict[str, list[dict[str, Any]]] = {}
        for h in _rows(self._read("retrieve", chunk, RETRIEVAL)):
            hits.setdefault(h["query_id"], []).append(h)
        judged = self._read("judge", chunk, JUDGE_SCORES)
        scores = dict(zip(zip(*(judged.column(c).to_pylist() for c in ("query_id", "candidate_id", "is_positive"))),
                          judged.column("score").to_pylist()))
        rows: list[dict[str, Any]] = []
        unjudged = 0
        skipped = dict.fromkeys(FILTERS, 0)
        for qid in embedded:
            q = queries[qid]
            retrieved = sorted(hits.get(qid, []), key=lambda h: h["rank"])
            # a candidate the judge refused (its prompt longer than the judge's context) is no negative
            found = [h for h in retrieved if not math.isnan(scores[(qid, h["candidate_id"], False)])]
            unjudged += len(retrieved) - len(found)
            cand_scores = [scores[(qid, h["candidate_id"], False)] for h in found]
            try:
                if not retrieved:
                    raise NoCandidates("no_candidates: retrieval found no eligible candidate")
                pos_score = scores[(qid, q["pos_id"], True)]
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
            sides = [pool[h["candidate_id"]] for h in picked]
            rows.append({
                "query_id": qid, "query_text": q["query_text"], "query_image": q["query_image"],
                "pos_id": q["pos_id"], "pos_text": q["pos_text"], "pos_image": q["pos_image"], "pos_score": pos_score,
                "neg_ids": [h["candidate_id"] for h in picked], "neg_texts": [s.text for s in sides],
                "neg_images": [s.image for s in sides],
                "neg_scores": [1.0 if sel.fallback else cand_scores[p] for p in sel.positions],
                "neg_ranks": [h["rank"] for h in picked], "neg_similarities": [h["similarity"] for h in picked],
                "num_unique_negatives": len(set(sel.positions)), "num_candidates": len(found),
                "num_false_negatives": sel.skipped["absolute_margin"] + sel.skipped["relative_margin"],
                "fallback": sel.fallback, "dataset": q["dataset"]})
        self._filtered.inc(skipped["absolute_margin"] + skipped["relative_margin"])
        for name, counter in self._skipped.items():
            counter.inc(skipped[name])
        self._unjudged.inc(unjudged)
        self._retrieved.inc(sum(len(hits.get(qid, [])) for qid in embedded))
        write_table(pa.Table.from_pylist(rows, schema=SHARDS),
                    os.path.join(self._shards_dir, shard_name(chunk.index, self._num_shards)), SHARDS,
                    shard_metadata(self._image_root, self._rule.num_negatives, sum(r["fallback"] for r in rows)))
