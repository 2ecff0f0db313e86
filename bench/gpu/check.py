"""GPU check of every model path (no Beam or FAISS needed): each embedder and judge backend that runs on torch
gives the same numbers on the GPU as on the CPU, for tiny models built here and the real MiniLM.

Usage: python3 -m bench.gpu.check MODELS_DIR IMAGE_ROOT [MINILM_DIR]; prints one JSON line per check and exits
non-zero if any differs by more than 1e-3. `python -m bench.gpu.pack DIR` builds a folder that travels.
"""
from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np
import torch

from judgemine.transforms.common.sides import Side
from judgemine.transforms.embed.backends import load_embedder
from judgemine.transforms.embed.base import EmbedderSpec
from judgemine.transforms.judge.backends.transformers import (
    TransformersJudge,
    TransformersOptions,
    TransformersVLMJudge,
)
from judgemine.transforms.judge.base import JudgeModel

TEXTS = ["A close-up of a tabby cat.", "", "<|image_1|>\nWhat animal is this?", "A red motorcycle.",
         "Define the word: big", "The capital of Kenya is Nairobi."]
IMAGES = ["", "images/chelsea.png", "images/chelsea.png", "images/motorcycle_left.png", "", ""]
QUERIES = [Side("<|image_1|>\nWhat animal is this?", "images/chelsea.png"), Side("Find a photo of a cat."),
           Side("Define the word: big"), Side("What is the capital of Kenya?")]
CANDIDATES = [Side("A cat."), Side("", "images/chelsea.png"), Side("Of considerable size."),
              Side("The capital of Kenya is Nairobi.")]


def retrieval_check(n_candidates: int = 200_000, n_queries: int = 50_000, dim: int = 384, k: int = 51) -> dict:
    """The torch top-k search (the GPU fallback when FAISS has no GPU) against numpy on a query sample, and
    its throughput at a pool a third of the paper's."""
    import time

    from judgemine.transforms.retrieve.torch_search import TorchFlatSearch
    rng = np.random.default_rng(0)
    cands = rng.normal(size=(n_candidates, dim)).astype(np.float32)
    cands /= np.linalg.norm(cands, axis=1, keepdims=True)
    queries = rng.normal(size=(n_queries, dim)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    index = TorchFlatSearch(cands, "cuda")
    index.search(queries[:1000], k)  # warm-up
    torch.cuda.synchronize()
    t0 = time.time()
    sims, rows = index.search(queries, k)
    secs = time.time() - t0
    exact = queries[:300] @ cands.T
    want = np.argsort(-exact, axis=1)[:, :k]
    same = float((rows[:300] == want).mean())
    return {"check": "retrieve:torch-topk", "candidates": n_candidates, "queries": n_queries, "k": k,
            "queries_per_s": round(n_queries / secs), "same_rows_as_numpy": same,
            "max_abs_diff": float(np.abs(sims[:300] - np.take_along_axis(exact, want, 1)).max()),
            "rows_match": same > 0.999}


def preflight_check(models: str) -> dict:
    """The checks `judgemine run --device cuda` makes before any stage (README, "Real models"): this CUDA torch
    passes the device check, and each packed model folder is the kind its backend takes."""
    from judgemine.transforms.common.devices import device_problem
    from judgemine.transforms.common.model_kinds import folder_kind, kind_problem
    problems = {"device": device_problem("cuda"),
                **{f"{name} as {backend}": kind_problem(f"{models}/{name}", accepts, "--model", backend)
                   for name, backend, accepts in (("tiny-judge", "transformers", ("chat", "vision-language")),
                                                  ("tiny-qwen2-vl", "vlm2vec", ("vision-language",)),
                                                  ("tiny-clip", "clip", ("dual-encoder",)))}}
    return {"check": "preflight:device-and-model-kinds", "problems": {k: v for k, v in problems.items() if v},
            "kinds": {n: folder_kind(f"{models}/{n}")[0] for n in ("tiny-judge", "tiny-qwen2-vl", "tiny-clip")},
            "passes": not any(problems.values())}


def main() -> int:
    models, image_root = sys.argv[1], sys.argv[2]
    minilm = sys.argv[3] if len(sys.argv) > 3 else ""
    assert torch.cuda.is_available(), "no GPU"
    checks: list[dict[str, Any]] = []

    def embedders(backend: str, path: str, texts: list[str], images: list[str], label: str = "") -> None:
        out = {d: load_embedder(EmbedderSpec(backend, path, 4, d, "float32", image_root)).embed(texts, images)
               for d in ("cpu", "cuda")}
        diff = float(np.abs(out["cpu"] - out["cuda"]).max())
        checks.append({"check": f"embed:{backend}{label}", ("tf32_abs_diff" if label else "max_abs_diff"): diff,
                       "unit_norm": bool(np.allclose(np.linalg.norm(out["cuda"], axis=1), 1, atol=1e-4))})

    # cuDNN runs fp32 convolutions (Qwen2-VL's patch embedding) in TF32 by default: reported, then switched
    # off so the comparisons below are fp32 against fp32.
    embedders("vlm2vec", f"{models}/tiny-qwen2-vl", TEXTS, IMAGES, label="-cudnn-tf32")
    torch.backends.cudnn.allow_tf32 = False
    embedders("clip", f"{models}/tiny-clip", TEXTS, IMAGES)
    embedders("vlm2vec", f"{models}/tiny-qwen2-vl", TEXTS, IMAGES)
    if minilm:
        text_only = [t for t in TEXTS if t and "<|" not in t]
        embedders("sentence-transformers", minilm, text_only, [""] * len(text_only))
    text_q, text_c = QUERIES[2:], CANDIDATES[2:]
    judged = {d: TransformersJudge(JudgeModel(f"{models}/tiny-judge", "float32", d, 2)).score(text_q, text_c)
              for d in ("cpu", "cuda")}
    checks.append({"check": "judge:transformers", "max_abs_diff": float(np.abs(judged["cpu"] - judged["cuda"]).max())})
    unpacked = TransformersJudge(JudgeModel(f"{models}/tiny-judge", "float32", "cuda", 2),
                                 TransformersOptions("none")).score(text_q, text_c)
    checks.append({"check": "judge:transformers-packed-vs-unpacked-gpu",
                   "max_abs_diff": float(np.abs(unpacked - judged["cuda"]).max())})
    vlm = f"{models}/tiny-qwen2-vl"
    judged = {d: TransformersVLMJudge(JudgeModel(vlm, "float32", d, 2, image_root)).score(QUERIES, CANDIDATES)
              for d in ("cpu", "cuda")}
    checks.append({"check": "judge:transformers-vlm",
                   "max_abs_diff": float(np.abs(judged["cpu"] - judged["cuda"]).max())})
    processor_vlm = {d: TransformersVLMJudge(JudgeModel(f"{models}/tiny-idefics3", "float32", d, 2, image_root))
                     .score(QUERIES, CANDIDATES) for d in ("cpu", "cuda")}  # through the model's processor class
    checks.append({"check": "judge:transformers-vlm-processor",
                   "max_abs_diff": float(np.abs(processor_vlm["cpu"] - processor_vlm["cuda"]).max())})
    bf16 = TransformersVLMJudge(JudgeModel(vlm, "bfloat16", "cuda", 2, image_root)).score(QUERIES, CANDIDATES)
    checks.append({"check": "judge:transformers-vlm-bf16-runs", "finite": bool(np.isfinite(bf16).all()),
                   "max_abs_diff_vs_fp32": float(np.abs(bf16 - judged["cpu"]).max())})
    checks.append(retrieval_check())
    checks.append(preflight_check(models))
    ok = True
    for c in checks:
        c["card"] = torch.cuda.get_device_name()
        c["ok"] = (c.get("max_abs_diff", 0.0) < 1e-3 and c.get("unit_norm", True) and c.get("finite", True)
                   and c.get("rows_match", True) and c.get("passes", True))
        ok &= c["ok"]
        print(json.dumps(c), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
