"""Stage 5: the mining rule per query, trainer shards, the gathered rejects and the run's manifest."""
from __future__ import annotations

import json
import os
import shutil
import time
from typing import Any, Iterable

import apache_beam as beam
import pyarrow as pa
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.utils.shared import Shared

from pipelines.artifacts import (atomic_dir, chain_fingerprint, list_parts, part_name, require_stage, stage_dir,
                                 write_stage_record)
from pipelines.judge import CandidateLookup
from pipelines.manifest import write_manifest
from pipelines.settings import Settings
from schemas import EMBEDDINGS, JUDGE_SCORES, QUERIES, REJECTS, RETRIEVAL, SHARDS, read_table, write_table
from transforms.chunks import Chunk, chunks_of
from transforms.mining import NoCandidates, query_rng, select_negatives

FINGERPRINT_SETTINGS = ("num_negatives", "beta", "step", "seed", "on_no_negatives")


def shard_name(i: int, n: int) -> str:
    return f"part-{i:05d}-of-{n:05d}.parquet"


class MineChunk(beam.DoFn):
    """One chunk of queries to one shard; queries the rule cannot serve go to the rejects output."""

    def __init__(self, output: str, shards_dir: str, num_shards: int, settings: Settings, shared: Shared) -> None:
        self._output, self._shards_dir, self._num_shards = output, shards_dir, num_shards
        self._m, self._beta, self._step, self._seed = (settings.num_negatives, settings.beta, settings.step,
                                                       settings.seed)
        self._reject_empty = settings.on_no_negatives == "reject"
        self._shared = shared
        self._fallback = Metrics.counter("judgemine.mine", "fallback_rows")
        self._filtered = Metrics.counter("judgemine.mine", "false_negatives_filtered")

    def setup(self) -> None:
        ingest = stage_dir(self._output, "ingest")
        self._lookup = self._shared.acquire(lambda: CandidateLookup(ingest), tag=ingest)

    def _read(self, stage: str, chunk: Chunk, schema: pa.Schema) -> list[dict[str, Any]]:
        """Chunk `chunk.index` of a stage's part files (ingest's queries live in its queries/ folder)."""
        folder = stage_dir(self._output, stage) if stage != "ingest" else os.path.join(
            stage_dir(self._output, stage), "queries")
        return read_table(os.path.join(folder, part_name(chunk.index)), schema).to_pylist()

    def process(self, chunk: Chunk) -> Iterable[Any]:
        embedded = read_table(chunk.path, EMBEDDINGS, ["id"]).column("id").to_pylist()
        queries = {q["query_id"]: q for q in self._read("ingest", chunk, QUERIES)}
        hits: dict[str, list[dict[str, Any]]] = {}
        for h in self._read("retrieve", chunk, RETRIEVAL):
            hits.setdefault(h["query_id"], []).append(h)
        scores = {(s["query_id"], s["candidate_id"], s["is_positive"]): s["score"]
                  for s in self._read("judge", chunk, JUDGE_SCORES)}
        rows: list[dict[str, Any]] = []
        filtered = 0
        for qid in embedded:
            q = queries[qid]
            found = sorted(hits.get(qid, []), key=lambda h: h["rank"])
            cand_scores = [scores[(qid, h["candidate_id"], False)] for h in found]
            try:
                if not found:
                    raise NoCandidates("no_candidates: retrieval found no eligible candidate")
                pos_score = scores[(qid, q["pos_id"], True)]
                sel = select_negatives(cand_scores, pos_score, self._m, self._beta, self._step,
                                       query_rng(self._seed, qid))
                if sel.fallback and self._reject_empty:
                    raise NoCandidates("no_negatives_after_filter: every candidate scored above s_pos - beta")
            except NoCandidates as e:
                yield beam.pvalue.TaggedOutput("rejects", {
                    "stage": "mine", "reason": str(e), "source": q["source"], "line": q["line"], "query_id": qid,
                    "row": json.dumps({k: v for k, v in q.items() if k != "excluded_ids"}, ensure_ascii=False)})
                continue
            filtered += len(found) - sel.kept_after_filter
            if sel.fallback:
                self._fallback.inc()
            picked = [found[p] for p in sel.positions]
            sides = [self._lookup.sides[h["candidate_id"]] for h in picked]
            rows.append({
                "query_id": qid, "query_text": q["query_text"], "query_image": q["query_image"],
                "pos_id": q["pos_id"], "pos_text": q["pos_text"], "pos_image": q["pos_image"], "pos_score": pos_score,
                "neg_ids": [h["candidate_id"] for h in picked], "neg_texts": [s.text for s in sides],
                "neg_images": [s.image for s in sides],
                "neg_scores": [1.0 if sel.fallback else cand_scores[p] for p in sel.positions],
                "neg_ranks": [h["rank"] for h in picked], "neg_similarities": [h["similarity"] for h in picked],
                "num_unique_negatives": len(set(sel.positions)), "fallback": sel.fallback, "dataset": q["dataset"]})
        self._filtered.inc(filtered)
        write_table(pa.Table.from_pylist(rows, schema=SHARDS),
                    os.path.join(self._shards_dir, shard_name(chunk.index, self._num_shards)), SHARDS)
        yield {"rows": len(rows), "false_negatives_filtered": filtered,
               "retrieved": sum(len(hits.get(qid, [])) for qid in embedded)}


def fingerprint(settings: Settings) -> str:
    return chain_fingerprint(require_stage(settings.output, "judge")["fingerprint"],
                             settings.fingerprint(*FINGERPRINT_SETTINGS))


def run_mine(settings: Settings, options: PipelineOptions) -> dict[str, Any]:
    started = time.time()
    fp = fingerprint(settings)
    chunks = chunks_of("queries", list_parts(os.path.join(stage_dir(settings.output, "embed"), "queries")))
    shards_final = os.path.join(settings.output, "shards")
    with atomic_dir(shards_final) as shards_tmp, atomic_dir(stage_dir(settings.output, "mine")) as tmp:
        with beam.Pipeline(options=options) as p:
            mined = (p | "ListChunks" >> beam.Create(chunks)
                     | "SpreadChunks" >> beam.Reshuffle()
                     | "MineNegatives" >> beam.ParDo(MineChunk(settings.output, shards_tmp, len(chunks), settings,
                                                               Shared())).with_outputs("rejects", main="stats"))
            _ = (mined.rejects | "GatherRejects" >> beam.combiners.ToList()
                 | "WriteRejects" >> beam.Map(lambda rows: write_table(
                     pa.Table.from_pylist(sorted(rows, key=lambda r: (r["source"], r["line"])), schema=REJECTS),
                     os.path.join(tmp, "rejects.parquet"), REJECTS)))
            _ = (mined.stats | "SumStats" >> beam.combiners.ToList()
                 | "WriteStats" >> beam.Map(lambda s: _write_json(os.path.join(tmp, "stats.json"), _sum(s))))
        with open(os.path.join(tmp, "stats.json"), encoding="utf-8") as f:
            counts = json.load(f)
        os.remove(os.path.join(tmp, "stats.json"))
        counts["rejected"] = read_table(os.path.join(tmp, "rejects.parquet"), REJECTS, ["reason"]).num_rows
        record = write_stage_record(tmp, "mine", fp, started, counts)
    _publish_rejects(settings.output)
    write_manifest(settings)
    return record


def _sum(stats: list[dict[str, int]]) -> dict[str, int]:
    keys = ("rows", "false_negatives_filtered", "retrieved")
    return {k: sum(s[k] for s in stats) for k in keys}


def _write_json(path: str, payload: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(payload, f)


def _publish_rejects(output: str) -> None:
    """DIR/rejects/<stage>.parquet: every stage's rejects in one place for the people who fix inputs."""
    with atomic_dir(os.path.join(output, "rejects")) as tmp:
        for stage in ("ingest", "embed", "mine"):
            src = os.path.join(stage_dir(output, stage), "rejects.parquet")
            if os.path.exists(src):
                shutil.copyfile(src, os.path.join(tmp, f"{stage}.parquet"))
