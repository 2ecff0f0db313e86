"""make bench-object-store: a stage on an object store with one boto3 client per process (schemas/s3_clients.py)
against Beam's own S3 filesystem as it ships (a new boto3 session and client for every call), in the same session.

On a real S3-compatible server on loopback (moto, testing/s3_server.py): per round, in fresh processes, the demo's
ingest stage into a fresh prefix with Beam's clients then with the shared one (the order alternating), and CALLS
`exists` calls on one object each way; medians over ROUNDS rounds. Loopback requests are fast, so the figures are
the client's own CPU cost, which a remote store adds to its latency.

Usage: python -m bench.bench_object_store [--rounds N]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from typing import Any

from bench.harness import save

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUCKET = "bench-object-store"
CALLS = 50
# A fresh process: judgemine's shared client ("shared"), or Beam's clients as shipped ("beam": s3_clients.share made
# a no-op and Beam's module given the real boto3 back).
CHILD = """
import json, sys, time
mode, what, options = sys.argv[1], sys.argv[2], sys.argv[3:]
if mode == "beam":
    import boto3
    from apache_beam.io.aws.clients.s3 import boto3_client
    import judgemine.schemas.s3_clients as s3_clients
    s3_clients.share = lambda: None
    boto3_client.boto3 = boto3
if what == "exists":
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.options.pipeline_options import PipelineOptions
    from judgemine.schemas import storage
    FileSystems.set_options(PipelineOptions(options[1:]))
    storage.exists(options[0])
    started = time.perf_counter()
    for _ in range(CALLS):
        storage.exists(options[0])
    print(json.dumps({"seconds": time.perf_counter() - started}))
else:
    from judgemine.pipelines.cli.entry import quiet_libraries
    quiet_libraries(False)
    from judgemine.pipelines.cli.parser import main
    started = time.perf_counter()
    code = main(["ingest", *options])
    print(json.dumps({"seconds": time.perf_counter() - started, "code": code}))
""".replace("CALLS", str(CALLS))


def _child(mode: str, what: str, options: list[str]) -> float:
    done = subprocess.run([sys.executable, "-c", CHILD, mode, what, *options], capture_output=True, text=True,
                          cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{mode} {what} failed: {done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result.get("code", 0) != 0:
        raise SystemExit(f"{mode} {what}: exit {result['code']}: {done.stderr[-2000:]}")
    return float(result["seconds"])


def main() -> None:
    from judgemine.testing.s3_server import local_s3
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    a = parser.parse_args()
    times: dict[str, dict[str, list[float]]] = {"ingest": {"beam": [], "shared": []},
                                                "exists": {"beam": [], "shared": []}}
    with local_s3(BUCKET) as (client, options):
        client.put_object(Bucket=BUCKET, Key="probe", Body=b"x")
        for r in range(a.rounds):
            for mode in (("beam", "shared") if r % 2 == 0 else ("shared", "beam")):
                out = f"s3://{BUCKET}/{mode}-{r}"
                times["ingest"][mode].append(_child(mode, "ingest", [
                    "--config", os.path.join(ROOT, "examples", "demo.yaml"), "--output", out, *options]))
                times["exists"][mode].append(_child(mode, "exists", [f"s3://{BUCKET}/probe", *options]))
    figures: dict[str, Any] = {"rounds": a.rounds, "exists_calls": CALLS}
    for what, by in times.items():
        medians = {mode: statistics.median(s) for mode, s in by.items()}
        scale = 1000 / CALLS if what == "exists" else 1.0
        unit = "ms_per_call" if what == "exists" else "s"
        figures[what] = {f"beam_clients_{unit}": round(medians["beam"] * scale, 3),
                         f"shared_client_{unit}": round(medians["shared"] * scale, 3),
                         "speedup": round(medians["beam"] / medians["shared"], 2)}
    save("bench_object_store", figures)


if __name__ == "__main__":
    main()
