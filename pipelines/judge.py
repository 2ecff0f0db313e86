"""Stage 4: every (query, candidate) and (query, positive) pair of a retrieve chunk to a judge score."""
from __future__ import annotations

import json
import logging
import os
import time
from typing import Any, Iterable

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import ModelHandler, RunInference
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.utils.shared import Shared

from pipelines.artifacts import (atomic_dir, chain_fingerprint, list_parts, part_name, require_stage, stage_dir,
                                 write_stage_record)
from pipelines.settings import Settings
from schemas import CANDIDATES, JUDGE_SCORES, QUERIES, RETRIEVAL, read_table, write_table
from transforms.chunks import Chunk, chunks_of
from transforms.judge_prompt import PROMPT_VERSION, Side
from transforms.judges import JudgeHandler, JudgeRequest, JudgeResult, JudgeSpec
from transforms.score_cache import ScoreCache, append_scores, judge_model_id, pair_key

FINGERPRINT_SETTINGS = ("judge_model", "judge_backend", "judge_dtype")
log = logging.getLogger("judgemine")


class CandidateLookup:
    """candidate_id -> (text, image) for the whole pool, loaded once per worker process."""

    def __init__(self, ingest_dir: str) -> None:
        self.sides: dict[str, Side] = {}
        for path in list_parts(os.path.join(ingest_dir, "candidates")):
            for r in read_table(path, CANDIDATES, ["candidate_id", "text", "image"]).to_pylist():
                self.sides[r["candidate_id"]] = Side(r["text"], r["image"])


class _Resources:
    """The pool and the score cache, loaded once per worker process."""

    def __init__(self, ingest_dir: str, cache_dir: str) -> None:
        self.lookup = CandidateLookup(ingest_dir)
        self.cache = ScoreCache(cache_dir)


class BuildJudgeRequests(beam.DoFn):
    """A retrieve chunk to the pairs to judge: per query its positive, then its candidates in rank order.
    Pairs whose score is in the cache are filled in here and never reach the model."""

    def __init__(self, ingest_dir: str, cache_dir: str, model_id: str, shared: Shared) -> None:
        self._ingest_dir, self._cache_dir, self._model_id = ingest_dir, cache_dir, model_id
        self._shared = shared
        self._cached = Metrics.counter("judgemine.judge", "pairs_cached")
        self._todo = Metrics.counter("judgemine.judge", "pairs_to_judge")

    def setup(self) -> None:
        self._res = self._shared.acquire(lambda: _Resources(self._ingest_dir, self._cache_dir),
                                         tag=f"{self._ingest_dir}|{self._cache_dir}")

    def process(self, chunk: Chunk) -> Iterable[JudgeRequest]:
        hits = read_table(chunk.path, RETRIEVAL, ["query_id", "candidate_id"]).to_pylist()
        queries = {q["query_id"]: q for q in read_table(
            os.path.join(self._ingest_dir, "queries", part_name(chunk.index)), QUERIES,
            ["query_id", "query_text", "query_image", "query_content_id", "pos_id", "pos_text", "pos_image"]
        ).to_pylist()}
        req = JudgeRequest(chunk.index)
        last = None
        for h in hits:
            q = queries[h["query_id"]]
            if h["query_id"] != last:
                last = h["query_id"]
                self._add(req, q, q["pos_id"], True, Side(q["pos_text"], q["pos_image"]))
            self._add(req, q, h["candidate_id"], False, self._res.lookup.sides[h["candidate_id"]])
        self._todo.inc(len(req.todo))
        self._cached.inc(len(req.query_ids) - len(req.todo))
        yield req

    def _add(self, req: JudgeRequest, q: dict[str, Any], cid: str, positive: bool, candidate: Side) -> None:
        key = pair_key(self._model_id, PROMPT_VERSION, q["query_content_id"], cid)
        req.query_ids.append(q["query_id"])
        req.candidate_ids.append(cid)
        req.is_positive.append(positive)
        known = self._res.cache.scores.get(key)
        req.known.append(float("nan") if known is None else known)
        if known is None:
            req.todo.append(len(req.query_ids) - 1)
            req.keys.append(key)
            req.queries.append(Side(q["query_text"], q["query_image"]))
            req.candidates.append(candidate)


class WriteScores(beam.DoFn):
    """Appends the new scores to the cache first, then writes the chunk's part: a kill between the two
    loses nothing, the rerun finds the scores in the cache."""

    def __init__(self, directory: str, cache_dir: str) -> None:
        self._dir, self._cache_dir = directory, cache_dir
        self._judged = Metrics.counter("judgemine.judge", "pairs_judged")

    def process(self, result: JudgeResult) -> Iterable[dict[str, int]]:
        r = result.request
        append_scores(self._cache_dir, r.keys, result.scores.tolist())
        scores = np.asarray(r.known, np.float32)
        scores[r.todo] = result.scores
        self._judged.inc(len(r.todo))
        table = pa.table({"query_id": r.query_ids, "candidate_id": r.candidate_ids, "is_positive": r.is_positive,
                          "score": pa.array(scores, pa.float32())})
        write_table(table, os.path.join(self._dir, part_name(r.chunk_index)), JUDGE_SCORES)
        log.info("judge: chunk %d done: %d pairs, %d judged, %d from the cache", r.chunk_index, len(r.query_ids),
                 len(r.todo), len(r.query_ids) - len(r.todo))
        yield {"pairs": len(r.query_ids), "judged": len(r.todo), **result.stats}


def _write_counts(directory: str, counts: list[dict[str, float]]) -> None:
    """Sums the per-chunk counts; the vLLM prefix-cache token counters become the run's hit rate."""
    total = {k: sum(c.get(k, 0) for c in counts) for k in {k for c in counts for k in c}}
    out: dict[str, float] = {"pairs": total.get("pairs", 0), "pairs_judged": total.get("judged", 0)}
    if total.get("prefix_cache_queried_tokens"):
        out["prefix_cache_hit_rate"] = round(total["prefix_cache_hit_tokens"] / total["prefix_cache_queried_tokens"],
                                             4)
        out["prefix_cache_queried_tokens"] = total["prefix_cache_queried_tokens"]
    with open(os.path.join(directory, "counts.json"), "w", encoding="utf-8") as f:
        json.dump(out, f)


def judge_handler(settings: Settings) -> ModelHandler:
    return JudgeHandler(judge_spec(settings))


def judge_spec(settings: Settings) -> JudgeSpec:
    return JudgeSpec(
        backend=settings.judge_backend, model_path=settings.judge_model, batch_size=settings.judge_batch_size,
        dtype=settings.judge_dtype, device=settings.device, max_model_len=settings.judge_max_model_len,
        vllm_gpu_memory_utilization=settings.vllm_gpu_memory_utilization, vllm_block_size=settings.vllm_block_size,
        server_url=settings.judge_server_url, server_model=settings.judge_server_model,
        concurrency=settings.judge_concurrency, timeout_s=settings.judge_timeout, retries=settings.judge_retries,
        image_root=settings.image_root)


def fingerprint(settings: Settings) -> str:
    return chain_fingerprint(require_stage(settings.output, "retrieve")["fingerprint"],
                             settings.fingerprint(*FINGERPRINT_SETTINGS), PROMPT_VERSION)


def run_judge(settings: Settings, options: PipelineOptions) -> dict[str, Any]:
    started = time.time()
    fp = fingerprint(settings)
    if not os.path.isdir(settings.judge_model):
        raise FileNotFoundError(f"judge model folder not found: {settings.judge_model} (run `make models` for the "
                                "tiny demo judge, or pass --judge-model DIR)")
    chunks = chunks_of("queries", list_parts(stage_dir(settings.output, "retrieve")))
    cache_dir = settings.judge_cache or os.path.join(settings.output, "cache", "judge")
    model_id = judge_model_id(settings.judge_model, settings.judge_dtype)
    with atomic_dir(stage_dir(settings.output, "judge")) as tmp:
        with beam.Pipeline(options=options) as p:
            _ = (p | "ListChunks" >> beam.Create(chunks)
                 | "SpreadChunks" >> beam.Reshuffle()
                 | "BuildPairs" >> beam.ParDo(BuildJudgeRequests(
                     stage_dir(settings.output, "ingest"), cache_dir, model_id, Shared()))
                 | "Judge" >> RunInference(judge_handler(settings))
                 | "WriteScores" >> beam.ParDo(WriteScores(tmp, cache_dir))
                 | "GatherCounts" >> beam.combiners.ToList()
                 | "WriteCounts" >> beam.Map(lambda c: _write_counts(tmp, c)))
        with open(os.path.join(tmp, "counts.json"), encoding="utf-8") as f:
            counts = json.load(f)
        os.remove(os.path.join(tmp, "counts.json"))
        elapsed = max(time.time() - started, 1e-9)
        record = write_stage_record(tmp, "judge", fp, started, {
            **counts, "pairs_cached": counts["pairs"] - counts["pairs_judged"],
            "judged_per_second": round(counts["pairs_judged"] / elapsed, 2)},
            judge_model=settings.judge_model, judge_backend=settings.judge_backend, judge_model_id=model_id,
            prompt_version=PROMPT_VERSION,
            cache=cache_dir)
    return record
