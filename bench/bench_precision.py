"""The precision the paper's rule needs, on the real judge (Qwen2.5-Coder-0.5B-Instruct) through the transformers
backend with its defaults (packed), on 20 real queries x 51 candidates (each query's own positive first).

Variants: fp32 (the reference); bf16 (`--judge-dtype bfloat16`: weights and activations in bf16, the answer
logits cast to fp32); bf16 with an fp32 head (the body in bf16, the last hidden state and the output projection
in fp32: what computing the answer logits in fp32 would cost and buy). Per variant: pairs/s of the scoring call
(median of ROUNDS), the score difference from fp32 (median, max) and, with the paper's rule (beta 0.01, m 10,
cyclical step 5) on each query's 50 other candidates, how many queries keep exactly fp32's negatives.

    python -m bench.bench_precision [ROUNDS]     (make bench-precision)
"""
from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np
import torch

from bench.bench_vllm import JUDGE, PER_QUERY, QUERIES, pairs
from bench.harness import median, save

VARIANTS = ("float32", "bfloat16", "bfloat16+fp32-head")


class Fp32Head(torch.nn.Module):
    """The output projection in fp32 over an upcast hidden state (the body stays in bf16)."""

    def __init__(self, head: torch.nn.Linear) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(head.weight.detach().float(), requires_grad=False)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.linear(hidden.float(), self.weight)


def judge_for(variant: str) -> Any:
    from judgemine.transforms.judge.backends.transformers import TransformersJudge
    from judgemine.transforms.judge.base import JudgeModel
    judge = TransformersJudge(JudgeModel(JUDGE, "float32" if variant == "float32" else "bfloat16", "cpu"),
                              TransformersJudge.Options())
    if variant.endswith("fp32-head"):
        judge.model.lm_head = Fp32Head(judge.model.lm_head)
    return judge


def negatives(scores: np.ndarray) -> list[tuple[int, ...]]:
    """The paper's rule per query: candidate 0 is the query's positive, the other 50 its retrieved candidates."""
    from judgemine.transforms.mine.rule import MiningRule, select_negatives
    rule = MiningRule(num_negatives=10, beta=0.01, step=5)
    out = []
    for q in range(QUERIES):
        row = scores[q * PER_QUERY:(q + 1) * PER_QUERY]
        out.append(select_negatives(row[1:].tolist(), float(row[0]), rule, np.random.default_rng(q)).positions)
    return out


def main(rounds: int) -> None:
    from judgemine.transforms.common.sides import Side
    queries, candidates = pairs()
    qs, cs = [Side(q) for q in queries], [Side(c) for c in candidates]
    results: dict[str, dict[str, Any]] = {}
    for variant in VARIANTS:
        judge = judge_for(variant)
        judge.score(qs[:PER_QUERY], cs[:PER_QUERY])  # warm-up
        took, scores = [], None
        for _ in range(rounds):
            started = time.perf_counter()
            scores = judge.score(qs, cs)
            took.append(time.perf_counter() - started)
        results[variant] = {"seconds": took, "scores": scores}
        print(variant, [round(t, 1) for t in took], flush=True)
        del judge
    reference = results["float32"]["scores"]
    chosen = negatives(reference)
    figures: dict[str, Any] = {"model": "Qwen2.5-Coder-0.5B-Instruct, transformers backend (packed), CPU",
                               "pairs": len(qs), "rounds": rounds}
    for variant, r in results.items():
        diff = np.abs(r["scores"] - reference)
        figures[variant] = {"pairs_per_second": round(len(qs) / median(r["seconds"]), 2),
                            "speed_over_fp32": round(median(results["float32"]["seconds"]) / median(r["seconds"]), 2),
                            "median_abs_diff": float(np.median(diff)), "max_abs_diff": float(diff.max()),
                            "queries_same_negatives": sum(a == b for a, b in zip(negatives(r["scores"]), chosen)),
                            "queries": QUERIES}
    save("bench_precision", figures)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
