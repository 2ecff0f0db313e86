"""make bench-checkpoints: what keeping a chunk's judging as it goes costs the judge stage.

The demo's pairs as one chunk (--chunk-size 4096: 14,229 pairs, the whole stage one unit of work, as a 4,096-query
chunk is at scale), judged from an empty score cache by `judgemine judge` in a fresh process, three ways, in turn,
ROUNDS times each: the chunk whole and kept only at its end (--judge-group-pairs 0: judgemine before in-chunk
checkpoints), the defaults (groups of 512 pairs, kept every 60 s), and groups kept after every group
(--judge-checkpoint-seconds 0.001, the upper bound of what writing checkpoints costs). Figures: the stage's own
seconds (its stage.json), median of ROUNDS, and each against the whole chunk. The tiny demo judge is the worst
case (its groups are the shortest, so per-group costs weigh most); --model DIR times a real judge on --queries Q.

Usage: python -m bench.bench_checkpoints [--rounds R] [--model DIR --queries Q]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys

from bench.harness import save

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "out", "bench-checkpoints")
JUDGEMINE = os.path.join(os.path.dirname(sys.executable), "judgemine")
WAYS = {"whole_chunk": ["--judge-group-pairs", "0"], "defaults": [],
        "every_group": ["--judge-checkpoint-seconds", "0.001"]}


def _run(command: str, args: list[str]) -> None:
    done = subprocess.run([JUDGEMINE, command, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"judgemine {command} failed ({done.returncode}): {done.stderr[-2000:]}")


def _args(out: str, model: str, queries: int) -> list[str]:
    base = ["--config", os.path.join(ROOT, "examples", "demo.yaml"), "--output", out, "--chunk-size", "4096",
            "--no-report", "--direct_num_workers", "1"]
    if not model:
        return base
    pairs = os.path.join(WORK, f"pairs-{queries}.jsonl")
    rows = [json.loads(line) for line in open(os.path.join(ROOT, "examples", "sample", "definitions.jsonl"))]
    with open(pairs, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows[:queries])
    return ["--pairs", pairs, "--judge-model", model, "--top-k", "20", "--output", out, "--chunk-size", "4096",
            "--no-report", "--direct_num_workers", "1"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--model", default="")
    parser.add_argument("--queries", type=int, default=40)
    a = parser.parse_args()
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    base = os.path.join(WORK, "retrieved")
    for stage in ("ingest", "embed", "index", "retrieve"):  # committed once; each judge starts from a copy
        _run(stage, _args(base, a.model, a.queries))
    seconds: dict[str, list[float]] = {way: [] for way in WAYS}
    pairs = 0
    for _ in range(a.rounds):
        for way, extra in WAYS.items():
            out = os.path.join(WORK, way)
            shutil.rmtree(out, ignore_errors=True)
            shutil.copytree(base, out)  # committed up to retrieve, no score cache
            _run("judge", [*_args(out, a.model, a.queries), *extra])
            record = json.load(open(os.path.join(out, "stages", "judge", "stage.json")))
            seconds[way].append(record["seconds"])
            pairs = record["counts"]["pairs_judged"]
    median = {way: statistics.median(s) for way, s in seconds.items()}
    figures = {"judge": a.model or "models/tiny-judge (the demo's)", "pairs_judged": pairs, "rounds": a.rounds,
               **{f"{way}_s": round(m, 2) for way, m in median.items()},
               **{f"{way}_vs_whole_chunk": round(m / median["whole_chunk"], 3) for way, m in median.items()
                  if way != "whole_chunk"}}
    save("bench_checkpoints" + ("_real" if a.model else ""), figures,
         "make bench-checkpoints" + (f" MODEL={a.model}" if a.model else ""))


if __name__ == "__main__":
    main()
