"""The batches export at scale: seconds and peak memory of `judgemine export --format batches`' writer on synthetic
judged runs (testing/synthetic_graph.py: 10 kept negatives and 4 flagged candidates a query, every candidate another
query's positive, the densest graph a run can give), each size in fresh processes: one writes the judge parts, one
exports (its peak RSS against a process that only imports the same modules). Medians of --rounds.

    python -m bench.bench_batches [--rows N ...] [--rounds R]     (make bench-batches)
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time

from bench.harness import median, save


def _child(mode: str, n: int, folder: str) -> dict[str, float]:
    from judgemine.pipelines.outputs.exports.base import ExportOptions
    from judgemine.pipelines.outputs.exports.batches import BatchesExport, BatchesOptions
    from judgemine.testing.synthetic_graph import SyntheticJudged
    from judgemine.transforms.mine.rule import MiningRule
    judged = SyntheticJudged(n, folder)
    if mode == "parts":
        judged.write_judge_parts()
        return {}
    result: dict[str, float] = {}
    if mode == "export":
        export = BatchesExport(ExportOptions(), BatchesOptions(batch_size=64))
        export._rule = MiningRule(beta=0.01)
        export._judge_parts = [f"{folder}/part-{i:05d}.parquet" for i in range(-(-n // 4096))]
        started = time.perf_counter()
        with open(f"{folder}/batches.parquet", "wb") as f:
            result["rows"] = export.write(judged.rows(), f, 10)
        result["seconds"] = time.perf_counter() - started
        result["left_out"] = export.dropped
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def _run(mode: str, n: int, folder: str) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-m", "bench.bench_batches", "--child", mode, str(n), folder],
                          check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> None:
    if argv[:1] == ["--child"]:
        print(json.dumps(_child(argv[1], int(argv[2]), argv[3])))
        return
    args = argparse.ArgumentParser()
    args.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    args.add_argument("--rounds", type=int, default=3)
    a = args.parse_args(argv)
    figures: dict[str, object] = {"batch_size": 64, "negatives": 10, "flagged": 4, "rounds": a.rounds}
    for n in a.rows:
        with tempfile.TemporaryDirectory(prefix="bench-batches-") as folder:
            _run("parts", n, folder)
            rounds = [_run("export", n, folder) for _ in range(a.rounds)]
            base = median([_run("imports", n, folder)["peak_rss_mb"] for _ in range(a.rounds)])
        row = {"seconds": median([r["seconds"] for r in rounds]),
               "peak_rss_mb": median([r["peak_rss_mb"] for r in rounds]), "imports_rss_mb": base,
               "left_out": rounds[0]["left_out"], "rows_written": rounds[0]["rows"]}
        row["bytes_per_row"] = (row["peak_rss_mb"] - base) * 2**20 / n
        figures[str(n)] = row
        print(n, json.dumps(row), flush=True)
    save("bench_batches", figures)


if __name__ == "__main__":
    main(sys.argv[1:])
