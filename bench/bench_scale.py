"""make bench-scale, part 1: whole runs with `--judge-backend similarity` on 20k, 50k, 100k and 200k real text
pairs (testing/scale_data.py: GCIDE + WordNet glosses -> headwords, all-MiniLM-L6-v2, the defaults otherwise),
each stage its own `judgemine <stage>` process under /usr/bin/time: wall seconds and peak resident memory per
stage and size; the growth exponent between the two largest sizes and what it projects for the paper's 662k
pairs and ten times that. Then the largest run again on two worker processes (`--direct_num_workers 2
--direct_running_mode multi_processing`): its shards must equal the one-process run's byte for byte.

Usage: python -m bench.bench_scale [--reuse] [SIZE ...] (default 20000 50000 100000 200000); results in
out/bench-scale/results.json. With --reuse, the sizes already in results.json keep their figures (and their
date, kept per size) and only the others run: the largest size is a long run on two cores, and so is its
multi-process twin."""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import time
from typing import Any

from bench.harness import save
from judgemine.pipelines.stages import STAGES
from judgemine.testing.scale_data import pairs, write

WORK = os.path.join("out", "bench-scale")
JUDGEMINE = os.path.join(os.path.dirname(sys.executable), "judgemine")
MULTI = ["--direct_num_workers", "2", "--direct_running_mode", "multi_processing"]
PAPER = 662_000


def run_stages(pairs_file: str, output: str, extra: list[str]) -> dict[str, dict[str, float]]:
    """Each stage in its own process: {stage: {"seconds", "peak_mib"}}."""
    out: dict[str, dict[str, float]] = {}
    for stage in STAGES:
        cmd = ["/usr/bin/time", "-f", "%e %M", JUDGEMINE, stage.name, "--output", output, "--pairs", pairs_file,
               "--judge-backend", "similarity", "--no-report", *extra]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"{stage.name} failed ({done.returncode}): {done.stderr[-2000:]}")
        seconds, kib = done.stderr.strip().splitlines()[-1].split()
        out[stage.name] = {"seconds": float(seconds), "peak_mib": round(int(kib) / 1024, 1)}
        print(json.dumps({"output": output, "stage": stage.name, **out[stage.name]}), flush=True)
    return out


def shard_digests(output: str) -> dict[str, str]:
    folder = os.path.join(output, "shards")
    return {name: hashlib.sha256(open(os.path.join(folder, name), "rb").read()).hexdigest()
            for name in sorted(os.listdir(folder)) if name.endswith(".parquet")}


def growth(sizes: list[int], figures: dict[int, dict[str, dict[str, float]]], key: str) -> dict[str, Any]:
    """Per stage: the exponent b of figure ~ n^b between the two largest sizes, and the projections."""
    a, b = sizes[-2], sizes[-1]
    out = {}
    for stage in figures[b]:
        x, y = figures[a][stage][key], figures[b][stage][key]
        exponent = math.log(max(y, 1e-9) / max(x, 1e-9)) / math.log(b / a)
        out[stage] = {"exponent": round(exponent, 2),
                      **{f"at_{n}": round(y * (n / b) ** exponent, 1) for n in (PAPER, 10 * PAPER)}}
    return out


def earlier(reuse: bool) -> tuple[dict[int, dict[str, dict[str, float]]], dict[int, str]]:
    """Figures and dates per size from the last results.json, when asked to reuse them."""
    path = os.path.join(WORK, "results.json")
    if not reuse or not os.path.exists(path):
        return {}, {}
    with open(path, encoding="utf-8") as f:
        last = json.load(f)
    dates = last.get("dates") or {str(n): last["date"] for n in last["sizes"]}
    return {int(n): v for n, v in last["stages"].items()}, {int(n): d for n, d in dates.items()}


def main(sizes: list[int], reuse: bool) -> None:
    rows = pairs()
    if len(rows) < max(sizes):
        raise SystemExit(f"only {len(rows)} pairs in GCIDE + WordNet, {max(sizes)} asked for")
    figures, dates = earlier(reuse)
    if not reuse:
        shutil.rmtree(WORK, ignore_errors=True)
    for n in sizes:
        if n in figures:
            continue
        for leftover in (f"run-{n}", f"run-{n}-multi"):
            shutil.rmtree(os.path.join(WORK, leftover), ignore_errors=True)
        figures[n] = run_stages(write(os.path.join(WORK, f"pairs-{n}.jsonl"), rows[:n]), os.path.join(WORK, f"run-{n}"),
                                ["--direct_num_workers", "1"])
        dates[n] = time.strftime("%Y-%m-%d %H:%M")
    sizes = sorted(figures)
    largest = max(sizes)
    t0 = time.monotonic()
    multi = run_stages(os.path.join(WORK, f"pairs-{largest}.jsonl"), os.path.join(WORK, f"run-{largest}-multi"), MULTI)
    one, two = shard_digests(os.path.join(WORK, f"run-{largest}")), shard_digests(os.path.join(WORK,
                                                                                              f"run-{largest}-multi"))
    report = {"date": time.strftime("%Y-%m-%d"), "dates": dates, "cores": os.cpu_count(), "sizes": sizes,
              "stages": figures,
              "growth_seconds": growth(sizes, figures, "seconds") if len(sizes) > 1 else {},
              "growth_peak_mib": growth(sizes, figures, "peak_mib") if len(sizes) > 1 else {},
              "multi_processing": {"stages": multi, "seconds": round(time.monotonic() - t0, 1),
                                   "shards": len(one), "byte_identical": one == two}}
    with open(os.path.join(WORK, "results.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
    save("bench_scale", report)
    if one != two:
        raise SystemExit("the multi-process run's shards differ from the one-process run's")


if __name__ == "__main__":
    args = sys.argv[1:]
    main([int(a) for a in args if a != "--reuse"] or [20_000, 50_000, 100_000, 200_000], "--reuse" in args)
