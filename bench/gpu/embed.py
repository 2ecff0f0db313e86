"""Text embedding throughput of the sentence-transformers embedder (the pipeline's default, MiniLM) on a GPU:
texts/s in fp32 and bf16 through `SentenceTransformerEmbedder.embed`, the call the embed stage makes per chunk,
and how far bf16 vectors are from fp32 ones.

Usage: python3 -m bench.gpu.embed MINILM_DIR [--texts N] [--batch B]; prints one JSON line per dtype.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from judgemine.testing.sample_pairs import sample_pairs
from judgemine.transforms.embed.backends import load_embedder
from judgemine.transforms.embed.base import EmbedderSpec


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--texts", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=512)
    args = parser.parse_args()
    queries, candidates = sample_pairs(args.texts // 2)
    texts = [s.text for pair in zip(queries, candidates) for s in pair]
    vectors = {}
    for dtype in ("float32", "bfloat16"):
        embedder = load_embedder(EmbedderSpec("sentence-transformers", args.model, args.batch, "cuda", dtype))
        embedder.embed(texts[:2048], [""] * 2048)  # warm-up
        torch.cuda.synchronize()
        start = time.perf_counter()
        vectors[dtype] = embedder.embed(texts, [""] * len(texts))
        torch.cuda.synchronize()
        secs = time.perf_counter() - start
        print(json.dumps({"bench": "embed:sentence-transformers", "card": torch.cuda.get_device_name(),
                          "dtype": dtype, "texts": len(texts), "batch": args.batch,
                          "texts_per_s": round(len(texts) / secs),
                          "max_abs_diff_vs_fp32": float(np.abs(vectors[dtype] - vectors["float32"]).max())}),
              flush=True)


if __name__ == "__main__":
    main()
