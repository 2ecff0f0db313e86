"""make bench-packing: the transformers judge with `--judge-packing prefix` against `none` on the same pairs, on
a random-weight judge of a mid-size shape (hidden 896, 8 layers, 14 heads: Qwen2-0.5B's width), where compute,
not Python, dominates.

Pairs: the first queries of the text demo (all their pairs: positive + 50 retrieved); the first image queries of
the image demo with all their pairs as retrieved ("images": candidates are captions or photos), and the first
image queries with their text candidates only ("image-text": the image -> text case of most MMEB subsets). The
image judge is a mid-size Qwen2-VL (images up to 448x448 px, up to 256 tokens). Each measurement runs in its own
process (for its peak memory), alternating none / prefix, ROUNDS times; the report gives medians. Prints one
JSON line per measurement, then a summary. `--pack-tokens` sets the packed-row budget (default: the setting's).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import typing

from apache_beam.options.pipeline_options import PipelineOptions

from bench.bench_judge import image_settings, pairs_of, text_settings
from bench.harness import save
from judgemine.pipelines.run.runner import run_one
from judgemine.testing.tiny_models import MID, build_tiny_judge, build_tiny_qwen2_vl
from judgemine.transforms.common.sides import Side
from judgemine.transforms.judge.backends.transformers import Packing, TransformersOptions

ROUNDS = 3
QUERIES = {"text": 8, "images": 2, "image-text": 4}


def prepare(work: str) -> dict[str, str]:
    """Pair files (JSON) and model folders for the child processes."""
    options = PipelineOptions(["--direct_num_workers", "1"])
    jobs = {}
    for kind, settings in (("text", text_settings(work)), ("images", image_settings(work)),
                           ("image-text", image_settings(work))):
        if not os.path.exists(os.path.join(settings.output, "stages", "retrieve", "stage.json")):
            for stage in ("ingest", "embed", "index", "retrieve"):
                run_one(stage, settings, options)
        qs, cs = pairs_of(settings.output)
        if kind != "text":  # image-query pairs only: the case the vision tower's reuse is for
            keep = [i for i, (q, c) in enumerate(zip(qs, cs)) if q.image and (kind == "images" or not c.image)]
            qs, cs = [qs[i] for i in keep], [cs[i] for i in keep]
        wanted = list(dict.fromkeys(qs))[:QUERIES[kind]]
        keep = [i for i, q in enumerate(qs) if q in wanted]
        path = os.path.join(work, f"{kind}.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"image_root": settings.image_root,
                       "pairs": [[qs[i].text, qs[i].image, cs[i].text, cs[i].image] for i in keep]}, f)
        texts = [s.text for s in (*qs, *cs)]
        model = os.path.join(work, "mid-text" if kind == "text" else "mid-images")
        if kind == "text":
            build_tiny_judge(model, texts, shape=MID, init_std=0.02)
        elif not os.path.exists(model):
            build_tiny_qwen2_vl(model, texts, shape=MID, init_std=0.02, max_pixels=448 * 448)
        jobs[kind] = json.dumps({"pairs": path, "model": model})
    return jobs


def measure(job: str, packing: str, budget: int) -> dict:
    """In a child process: load the judge, score every pair once, report time, tokens and peak memory."""
    import numpy as np
    import torch

    from judgemine.transforms.judge.backends.transformers import TransformersJudge
    from judgemine.transforms.judge.base import JudgeModel
    spec = json.loads(job)
    with open(spec["pairs"], encoding="utf-8") as f:
        data = json.load(f)
    queries = [Side(q, qi) for q, qi, _, _ in data["pairs"]]
    candidates = [Side(c, ci) for _, _, c, ci in data["pairs"]]
    torch.manual_seed(0)
    model = JudgeModel(spec["model"], device="cpu", batch_size=16, image_root=data["image_root"])
    judge = TransformersJudge.load(model, TransformersOptions(typing.cast(Packing, packing), budget))
    t0 = time.perf_counter()
    scores = judge.score(queries, candidates)
    seconds = time.perf_counter() - t0
    tokens = judge.counters()
    np.save(spec["pairs"] + f".{packing}.npy", scores)
    return {"packing": packing, "pairs": len(scores), "seconds": round(seconds, 2),
            "pairs_per_s": round(len(scores) / seconds, 2),
            "tokens_computed_per_pair": round(tokens["judge_tokens_computed"] / len(scores), 1) if tokens else None,
            "tokens_plain_per_pair": round(tokens["judge_tokens_plain"] / len(scores), 1) if tokens else None,
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", nargs=2, metavar=("JOB", "PACKING"))
    parser.add_argument("--pack-tokens", type=int, default=TransformersOptions().judge_pack_tokens)
    parser.add_argument("--kinds", default=",".join(QUERIES), help="comma list of text, images, image-text")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], args.child[1], args.pack_tokens)), flush=True)
        return
    import numpy as np
    work = tempfile.mkdtemp(prefix="bench-packing-")
    try:
        jobs = prepare(work)
        summary = {}
        for kind in args.kinds.split(","):
            job = jobs[kind]
            runs: dict[str, list[dict]] = {"none": [], "prefix": []}
            for _ in range(ROUNDS):
                for packing in ("none", "prefix"):
                    out = subprocess.run([sys.executable, "-m", "bench.bench_packing", "--child", job, packing,
                                          "--pack-tokens", str(args.pack_tokens)],
                                         check=True, capture_output=True, text=True).stdout
                    runs[packing].append(json.loads(out.strip().splitlines()[-1]))
                    print(json.dumps({"pairs_kind": kind, **runs[packing][-1]}), flush=True)
            pairs_file = json.loads(job)["pairs"]
            diff = float(np.abs(np.load(pairs_file + ".none.npy") - np.load(pairs_file + ".prefix.npy")).max())
            med = {p: statistics.median(r["pairs_per_s"] for r in runs[p]) for p in runs}
            summary[kind] = {"pairs": runs["none"][0]["pairs"], "none_pairs_per_s": med["none"],
                             "prefix_pairs_per_s": med["prefix"], "speedup": round(med["prefix"] / med["none"], 2),
                             "tokens_per_pair": {"none": runs["prefix"][0]["tokens_plain_per_pair"],
                                                 "prefix": runs["prefix"][0]["tokens_computed_per_pair"]},
                             "peak_rss_mib": {p: max(r["peak_rss_mib"] for r in runs[p]) for p in runs},
                             "max_abs_score_diff": diff}
        save("bench_packing", {"model": "random Qwen2 / Qwen2-VL, hidden 896, 8 layers, 14 heads (2 KV), fp32, CPU",
                               "rounds": ROUNDS, "pack_tokens": args.pack_tokens, "summary": summary})
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
