"""Stage 4: every (query, candidate) and (query, positive) pair of a retrieve chunk to a judge score."""
from __future__ import annotations

import os
import time
from typing import Any, Iterable

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import ModelHandler, RunInference
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.utils.shared import Shared

from pipelines.artifacts import atomic_dir, chain_fingerprint, list_parts, part_name, require_stage, stage_dir, write_stage_record
from pipelines.settings import Settings
from schemas import CANDIDATES, JUDGE_SCORES, QUERIES, RETRIEVAL, read_table, write_table
from transforms.chunks import Chunk, chunks_of
from transforms.judge_prompt import PROMPT_VERSION, Side
from transforms.judges import JudgeRequest, JudgeResult, TransformersJudgeHandler

FINGERPRINT_SETTINGS = ("judge_model", "judge_backend", "judge_dtype")


class CandidateLookup:
    """candidate_id -> (text, image) for the whole pool, loaded once per worker process."""

    def __init__(self, ingest_dir: str) -> None:
        self.sides: dict[str, Side] = {}
        for path in list_parts(os.path.join(ingest_dir, "candidates")):
            for r in read_table(path, CANDIDATES, ["candidate_id", "text", "image"]).to_pylist():
                self.sides[r["candidate_id"]] = Side(r["text"], r["image"])


class BuildJudgeRequests(beam.DoFn):
    """A retrieve chunk to the pairs to judge: per query its positive, then its candidates in rank order."""

    def __init__(self, ingest_dir: str, shared: Shared) -> None:
        self._ingest_dir = ingest_dir
        self._shared = shared
        self._pairs = Metrics.counter("judgemine.judge", "pairs")

    def setup(self) -> None:
        self._lookup = self._shared.acquire(lambda: CandidateLookup(self._ingest_dir), tag=self._ingest_dir)

    def process(self, chunk: Chunk) -> Iterable[JudgeRequest]:
        hits = read_table(chunk.path, RETRIEVAL, ["query_id", "candidate_id"]).to_pylist()
        queries = {q["query_id"]: q for q in read_table(
            os.path.join(self._ingest_dir, "queries", part_name(chunk.index)), QUERIES,
            ["query_id", "query_text", "query_image", "pos_id", "pos_text", "pos_image"]).to_pylist()}
        req = JudgeRequest(chunk.index, [], [], [], [], [])
        last = None
        for h in hits:
            q = queries[h["query_id"]]
            query = Side(q["query_text"], q["query_image"])
            if h["query_id"] != last:
                last = h["query_id"]
                self._append(req, q["query_id"], q["pos_id"], True, query, Side(q["pos_text"], q["pos_image"]))
            self._append(req, q["query_id"], h["candidate_id"], False, query, self._lookup.sides[h["candidate_id"]])
        self._pairs.inc(len(req.query_ids))
        yield req

    @staticmethod
    def _append(req: JudgeRequest, qid: str, cid: str, positive: bool, query: Side, candidate: Side) -> None:
        req.query_ids.append(qid)
        req.candidate_ids.append(cid)
        req.is_positive.append(positive)
        req.queries.append(query)
        req.candidates.append(candidate)


class WriteScores(beam.DoFn):
    def __init__(self, directory: str) -> None:
        self._dir = directory

    def process(self, result: JudgeResult) -> None:
        r = result.request
        table = pa.table({"query_id": r.query_ids, "candidate_id": r.candidate_ids, "is_positive": r.is_positive,
                          "score": pa.array(result.scores, pa.float32())})
        write_table(table, os.path.join(self._dir, part_name(r.chunk_index)), JUDGE_SCORES)


def judge_handler(settings: Settings) -> ModelHandler:
    return TransformersJudgeHandler(settings.judge_model, settings.judge_batch_size, settings.judge_dtype,
                                    settings.device)


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
    with atomic_dir(stage_dir(settings.output, "judge")) as tmp:
        with beam.Pipeline(options=options) as p:
            _ = (p | "ListChunks" >> beam.Create(chunks)
                 | "SpreadChunks" >> beam.Reshuffle()
                 | "BuildPairs" >> beam.ParDo(BuildJudgeRequests(stage_dir(settings.output, "ingest"), Shared()))
                 | "Judge" >> RunInference(judge_handler(settings))
                 | "WriteScores" >> beam.ParDo(WriteScores(tmp)))
        pairs = sum(pq.ParquetFile(p).metadata.num_rows for p in list_parts(tmp))
        record = write_stage_record(tmp, "judge", fp, started, {
            "pairs": pairs, "pairs_per_second": round(pairs / max(time.time() - started, 1e-9), 2),
            "judge_model": settings.judge_model, "prompt_version": PROMPT_VERSION})
    return record
