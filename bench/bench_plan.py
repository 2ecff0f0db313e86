"""make bench-plan: how well `judgemine plan` predicts the judge stage it plans.

For each input, PLANS plans in fresh processes (`plan --json`: the judge's seconds, their range from three timed
samples of four queries, the pairs/s of each), then the run itself; the figure is the judge stage's own seconds
(its stage.json) against each plan's range. Inputs: the demo (the tiny judge, 14k pairs), 2,000 real pairs
(Debian's GCIDE and WordNet, judgemine/testing/scale_data.py) with the tiny judge and every default (102k
pairs), and with --model DIR a real judge on 40 of the demo's definitions at K = 20 (840 pairs).

Usage: python -m bench.bench_plan [--plans N] [--model DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from typing import Any

from bench.harness import save

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "out", "bench-plan")
JUDGEMINE = os.path.join(os.path.dirname(sys.executable), "judgemine")


def _judgemine(*args: str) -> str:
    done = subprocess.run([JUDGEMINE, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"judgemine {args[0]} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def _inputs(model: str) -> dict[str, list[str]]:
    from judgemine.testing.scale_data import pairs, write
    real = write(os.path.join(WORK, "pairs-2000.jsonl"), pairs()[:2000])
    out = {"demo": ["--config", os.path.join(ROOT, "examples", "demo.yaml")],
           "real_pairs_2000": ["--pairs", real, "--judge-model", os.path.join(ROOT, "models", "tiny-judge")]}
    if model:
        rows = [json.loads(line) for line in open(os.path.join(ROOT, "examples", "sample", "definitions.jsonl"))]
        path = os.path.join(WORK, "definitions-40.jsonl")
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows[:40])
        out["real_judge_40"] = ["--pairs", path, "--judge-model", model, "--top-k", "20"]
    return out


def measure(args: list[str], name: str, plans: int) -> dict[str, Any]:
    out = os.path.join(WORK, name)
    ranges, estimates, rates = [], [], []
    for _ in range(plans):
        plan = json.loads(_judgemine("plan", *args, "--output", out, "--json"))
        ranges.append(plan["seconds_range"]["judge"])
        estimates.append(plan["seconds"]["judge"])
        rates.append(plan["rates"]["judge_pairs_per_second"])
    _judgemine("run", *args, "--output", out, "--no-report")
    record = json.load(open(os.path.join(out, "stages", "judge", "stage.json")))
    actual = record["seconds"]
    return {"pairs": record["counts"]["pairs_judged"], "run_judge_s": actual,
            "plans": {str(i + 1): {"low_s": low, "estimate_s": est, "high_s": high, "pairs_per_second": rate,
                                   "run_inside": low <= actual <= high, "run_vs_estimate": round(actual / est, 2)}
                      for i, ((low, high), est, rate) in enumerate(zip(ranges, estimates, rates))},
            "runs_inside_the_range": sum(low <= actual <= high for low, high in ranges)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--plans", type=int, default=3)
    parser.add_argument("--model", default="")
    a = parser.parse_args()
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    figures = {name: measure(args, name, a.plans) for name, args in _inputs(a.model).items()}
    save("bench_plan", figures)


if __name__ == "__main__":
    main()
