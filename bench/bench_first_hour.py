"""A newcomer's first hour, timed as they live it (`make bench-first-hour`): the real `judgemine` command, each
case its own process, median of ROUNDS rounds.

- a 100%-rejected file (a question/answer JSONL): seconds until `run` stops with exit 2, and `plan` likewise;
- `--device cuda` on this CPU-only torch: seconds until the one-line refusal (no stage starts);
- the bundled own-data CSV (examples/own/pairs.csv, 40 pairs) mined end to end with the defaults;
- SIGTERM in the judge stage: seconds from the signal to exit 143.

The baseline in the same session is `judgemine --version` (interpreter and import start-up)."""
from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

from bench.harness import ROOT, median, save

JUDGEMINE = os.path.join(os.path.dirname(sys.executable), "judgemine")
JUDGE = os.path.join(ROOT, "models", "tiny-judge")
OWN = os.path.join(ROOT, "examples", "own", "pairs.csv")


def _timed(*args: str, expect: int) -> float:
    started = time.monotonic()
    done = subprocess.run([JUDGEMINE, *args], capture_output=True, text=True, cwd=ROOT, timeout=900)
    seconds = time.monotonic() - started
    assert done.returncode == expect, (args, done.returncode, done.stderr[-2000:])
    return seconds


def _sigterm_latency(out: str) -> float:
    proc = subprocess.Popen([JUDGEMINE, "run", "--config", os.path.join(ROOT, "examples", "demo.yaml"),
                             "--output", out], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    while not glob.glob(os.path.join(out, "stages", "judge.tmp-*")):
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.01)
    time.sleep(1.0)  # well inside the judge
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=300)
    assert proc.returncode == 143
    return time.monotonic() - sent


def main(rounds: int = 3) -> None:
    times: dict[str, list[float]] = {k: [] for k in ("version", "bad_file_run", "bad_file_plan", "cuda_refused",
                                                    "own_csv_run", "sigterm_to_exit")}
    with tempfile.TemporaryDirectory() as tmp:
        bad = os.path.join(tmp, "qa.jsonl")
        with open(bad, "w", encoding="utf-8") as f:
            for i in range(1000):
                f.write(json.dumps({"question": f"question {i}?", "answer": f"answer {i}."}) + "\n")
        for r in range(rounds):
            out = os.path.join(tmp, f"round-{r}")
            times["version"].append(_timed("--version", expect=0))
            times["bad_file_run"].append(_timed("run", "--pairs", bad, "--output", out + "-bad", expect=2))
            times["bad_file_plan"].append(_timed("plan", "--pairs", bad, "--output", out + "-plan", expect=2))
            times["cuda_refused"].append(_timed("run", "--pairs", OWN, "--output", out + "-cuda", "--device", "cuda",
                                                expect=2))
            times["own_csv_run"].append(_timed("run", "--pairs", OWN, "--output", out + "-own", expect=0))
            times["sigterm_to_exit"].append(_sigterm_latency(out + "-term"))
    figures: dict[str, object] = {f"{k}_seconds": round(median(v), 2) for k, v in times.items()}
    figures.update(rounds=rounds, bad_file_rows=1000, own_csv_pairs=40, judge="models/tiny-judge (random weights)")
    save("bench_first_hour", figures)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
