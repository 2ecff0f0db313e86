"""make bench-portable: each stage on Beam's portable runner (a local job service and one external worker pool on
loopback, the runner Flink and Spark drive) against the in-process runner, in the same session.

Per input, ROUNDS rounds, each a whole run in-process then on the portable runner (the order alternating), each
into a fresh output with a fresh score cache; a stage's figure is its own seconds (its stage.json), the median
over rounds. Beside them, an empty job (one element through one Map) on each runner, timed ROUNDS times in this
process: the fixed cost of a job there (submission, an SDK worker started), which every stage pays once; and the
import, in a fresh process, of the modules a stage's worker unpickles (the in-process runner has them imported
already, by the driver or an earlier stage), median of ROUNDS. Inputs: the demo (the tiny judge, 286 rows) and
2,000 real pairs (Debian's GCIDE and WordNet, judgemine/testing/scale_data.py) at K = 10 with the tiny judge.

Usage: python -m bench.bench_portable [--rounds N]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from bench.harness import save

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "out", "bench-portable")
JUDGEMINE = os.path.join(os.path.dirname(sys.executable), "judgemine")
STAGES = ("ingest", "embed", "index", "retrieve", "judge", "mine")
WORKER_IMPORTS = {  # what each stage's SDK worker imports to run its DoFns (the embedder and judge: their backends)
    "ingest": "judgemine.transforms.ingest.records, judgemine.transforms.ingest.pool",
    "embed": "judgemine.transforms.embed.handler, judgemine.transforms.embed.backends",
    "index": "judgemine.transforms.index.build",
    "retrieve": "judgemine.transforms.retrieve.search",
    "judge": "judgemine.transforms.judge.with_model, judgemine.transforms.judge.backends",
    "mine": "judgemine.transforms.mine.shards, judgemine.transforms.common.candidates",
}


def _inputs() -> dict[str, list[str]]:
    from judgemine.testing.scale_data import pairs, write
    real = write(os.path.join(WORK, "pairs-2000.jsonl"), pairs()[:2000])
    return {"demo": ["--config", os.path.join(ROOT, "examples", "demo.yaml")],
            "real_pairs_2000_k10": ["--pairs", real, "--judge-model", os.path.join(ROOT, "models", "tiny-judge"),
                                    "--top-k", "10"]}


def _run(args: list[str], out: str, runner: list[str]) -> dict[str, float]:
    """A whole run; each stage's seconds from its record."""
    shutil.rmtree(out, ignore_errors=True)
    done = subprocess.run([JUDGEMINE, "run", *args, "--output", out, "--judge-cache", out + "-cache", "--no-report",
                           *runner], capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"judgemine run failed ({done.returncode}): {done.stderr[-2000:]}")
    shutil.rmtree(out + "-cache", ignore_errors=True)
    return {stage: json.load(open(os.path.join(out, "stages", stage, "stage.json")))["seconds"] for stage in STAGES}


def _empty_job(runner: list[str]) -> float:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from judgemine.pipelines.run.runners import default_runner
    options = PipelineOptions(runner)
    started = time.perf_counter()
    with beam.Pipeline(runner=default_runner(options), options=options) as p:
        _ = p | beam.Create([0]) | beam.Map(lambda x: x + 1)
    return time.perf_counter() - started


def _import_seconds(modules: str) -> float:
    """Seconds to import `modules` in a fresh interpreter that has imported Beam's SDK worker already."""
    code = ("import time, apache_beam.runners.worker.sdk_worker; t = time.perf_counter(); import " + modules
            + "; print(time.perf_counter() - t)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


def measure(args: list[str], name: str, rounds: int, portable: list[str]) -> dict[str, Any]:
    runs: dict[str, list[dict[str, float]]] = {"in_process": [], "portable": []}
    for i in range(rounds):
        order = ("in_process", "portable") if i % 2 == 0 else ("portable", "in_process")
        for runner in order:
            runs[runner].append(_run(args, os.path.join(WORK, name, runner), portable if runner == "portable" else []))
    out: dict[str, Any] = {}
    for stage in (*STAGES, "total"):
        seconds = {runner: statistics.median(r[stage] if stage != "total" else sum(r.values()) for r in rs)
                   for runner, rs in runs.items()}
        out[stage] = {"in_process_s": round(seconds["in_process"], 2), "portable_s": round(seconds["portable"], 2),
                      "ratio": round(seconds["portable"] / seconds["in_process"], 2),
                      "gap_s": round(seconds["portable"] - seconds["in_process"], 2)}
    return out


def main() -> None:
    from judgemine.testing.beam_services import VENV_BIN, beam_services, portable_args
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    a = parser.parse_args()
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    with beam_services(tempfile.mkdtemp(prefix="beam-services-"), {"pool": VENV_BIN}) as services:
        portable = portable_args(services, "pool")
        empty = {"in_process": [_empty_job([]) for _ in range(a.rounds)],
                 "portable": [_empty_job(portable) for _ in range(a.rounds)]}
        figures: dict[str, Any] = {"empty_job_s": {runner: round(statistics.median(s), 2)
                                                   for runner, s in empty.items()}}
        figures["worker_imports_s"] = {stage: round(statistics.median(_import_seconds(modules)
                                                                      for _ in range(a.rounds)), 2)
                                       for stage, modules in WORKER_IMPORTS.items()}
        figures.update({name: measure(args, name, a.rounds, portable) for name, args in _inputs().items()})
    save("bench_portable", figures)


if __name__ == "__main__":
    main()
