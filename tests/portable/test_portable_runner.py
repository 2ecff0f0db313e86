"""Every stage on Beam's portable runner, as Flink and Spark run it: a real job service and two external worker
pools on loopback, the demos (text and images) giving the same bytes as the in-process runner, and each way a
runner fails (workers that cannot import Beam, no job service, a worker killed mid-stage) ending the command
with one line within its documented bound (docs/cluster.md, "When a runner fails")."""
from __future__ import annotations

import glob
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from judgemine.pipelines.run.runners import JOB_SERVICE_SECONDS
from judgemine.testing.beam_services import VENV_BIN, beam_services, free_port, portable_args, sdk_workers
from judgemine.transforms.common.progress import BEAT_SECONDS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
JUDGEMINE = os.path.join(VENV_BIN, "judgemine")
WORKER_TIMEOUT = 60.0  # --worker-timeout's default: the tests use what a user gets


@pytest.fixture(scope="module")
def services(tmp_path_factory) -> Iterator[dict[str, str]]:
    """A local job service and worker pools: `a` (the text demo asks it for two SDK workers), `b`, and `bare`,
    whose `python` has neither Beam nor judgemine (a venv made without them)."""
    logs = tmp_path_factory.mktemp("beam-services")
    bare = logs / "bare-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    with beam_services(str(logs), {"a": VENV_BIN, "b": VENV_BIN, "bare": str(bare / "bin")}) as started:
        yield started


def jm(*args: str, timeout: float = 900) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    done = subprocess.run([JUDGEMINE, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    return done, time.monotonic() - started


def _digests(out: str) -> dict[str, str]:
    """Every shard's and reject part's sha256, by its path in the run."""
    files = glob.glob(os.path.join(out, "shards", "*.parquet")) + \
        glob.glob(os.path.join(out, "rejects", "**", "*.parquet"), recursive=True)
    return {os.path.relpath(p, out): hashlib.sha256(open(p, "rb").read()).hexdigest() for p in sorted(files)}


def _counts(out: str) -> dict:
    with open(os.path.join(out, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    return {"accounting": manifest["accounting"], "rejects": manifest["rejects_by_reason"],
            "scores": manifest["scores"],
            "stages": {name: stage["counts"] for name, stage in manifest["stages"].items()}}


def _lines(stderr: str) -> list[str]:
    """What the command printed besides its timestamped progress lines."""
    return [line for line in stderr.splitlines() if line and not line[:4].isdigit()]


@pytest.mark.parametrize("demo", ["demo.yaml", "demo_images.yaml"])
def test_the_demo_on_the_portable_runner_writes_what_the_in_process_runner_writes(services, tmp_path, demo):
    config = os.path.join(ROOT, "examples", demo)
    if demo == "demo_images.yaml":
        subprocess.run([sys.executable, os.path.join(ROOT, "examples", "multimodal", "copy_images.py")], check=True,
                       cwd=ROOT, capture_output=True)
    here, _ = jm("run", "--config", config, "--output", str(tmp_path / "direct"),
                 "--judge-cache", str(tmp_path / "cache-direct"))
    assert here.returncode == 0, here.stderr
    pool = ["--direct_num_workers", "2"] if demo == "demo.yaml" else []  # two SDK workers from one pool
    there, _ = jm("run", "--config", config, "--output", str(tmp_path / "portable"),
                  "--judge-cache", str(tmp_path / "cache-portable"),
                  *portable_args(services, "a" if demo == "demo.yaml" else "b"), *pool)
    assert there.returncode == 0, there.stderr
    assert "Traceback" not in there.stderr
    direct, remote = _digests(str(tmp_path / "direct")), _digests(str(tmp_path / "portable"))
    assert any(path.startswith("shards/") for path in direct) and remote == direct
    assert _counts(str(tmp_path / "portable")) == _counts(str(tmp_path / "direct"))


NO_WORKER = ("no worker started within 60 s (--worker-timeout): the runner could not start one (or it died while "
             "starting), or it could not import apache_beam or judgemine (install both where the workers run: an "
             "EXTERNAL worker pool starts the `python` on its own PATH)")
NO_JOB_SERVICE = ("no Beam job service answered at {endpoint} (--job_endpoint) within 10 s: start it (python -m "
                  "apache_beam.runners.portability.local_job_service_main --port PORT, or the Flink or Spark job "
                  "server) or fix the address")


@pytest.mark.parametrize("case", ["workers without Beam", "no job service"])
def test_a_runner_that_cannot_start_fails_the_stage_in_one_line_within_its_bound(case, services, tmp_path):
    if case == "workers without Beam":
        runner, line, bound = portable_args(services, "bare"), NO_WORKER, WORKER_TIMEOUT
    else:
        nobody = f"localhost:{free_port()}"
        runner = ["--runner", "PortableRunner", "--job_endpoint", nobody, "--environment_type", "EXTERNAL",
                  "--environment_config", "localhost:1"]
        line, bound = NO_JOB_SERVICE.format(endpoint=nobody), JOB_SERVICE_SECONDS
    done, seconds = jm("ingest", "--config", os.path.join(ROOT, "examples", "demo.yaml"), "--output",
                       str(tmp_path / "out"), *runner)
    assert done.returncode == 1, done.stderr
    assert _lines(done.stderr) == [f"judgemine: ingest failed: {line}"]
    assert bound <= seconds < bound + 20
    assert not glob.glob(str(tmp_path / "out" / "stages" / "*"))  # nothing committed, nothing left


def test_a_worker_killed_mid_stage_fails_it_in_one_line_and_the_rerun_resumes(services, tmp_path):
    config = os.path.join(ROOT, "examples", "demo.yaml")
    out, cache = str(tmp_path / "out"), str(tmp_path / "cache")
    until_judge = [jm(stage, "--config", config, "--output", out, "--judge-cache", cache)[0]
                   for stage in ("ingest", "embed", "index", "retrieve")]
    assert all(done.returncode == 0 for done in until_judge), until_judge[-1].stderr
    pool = int(services["a_pid"])
    judge = subprocess.Popen([JUDGEMINE, "judge", "--config", config, "--output", out, "--judge-cache", cache,
                              *portable_args(services, "a")], stderr=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = time.monotonic() + 120  # the worker has reported into the stage's work folder: it is judging
    while not glob.glob(os.path.join(out, "stages", "judge.work-*", "*.work")) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2)
    workers = sdk_workers(pool)
    assert workers and judge.poll() is None
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    _, err = judge.communicate(timeout=WORKER_TIMEOUT + 60)
    seconds = time.monotonic() - killed
    assert judge.returncode == 1, err
    [line] = _lines(err)
    if "stopped reporting" in line:  # the job service waits for the worker: the driver's watch ends it
        assert line.startswith("judgemine: judge failed: worker "), line
        assert WORKER_TIMEOUT - BEAT_SECONDS - 1 <= seconds < WORKER_TIMEOUT + 20  # from its last report
    else:  # the kill cut a data stream the job service was reading: the job fails at once
        assert line == ("judgemine: judge failed: a worker's connection closed mid-stage (the process was killed, "
                        "ran out of memory, or its machine went away): rerun the command to resume from what is "
                        "committed"), line
        assert seconds < 20
    rerun, _ = jm("run", "--config", config, "--output", out, "--judge-cache", cache, *portable_args(services, "a"))
    assert rerun.returncode == 0, rerun.stderr
    direct, _ = jm("run", "--config", config, "--output", str(tmp_path / "direct"),
                   "--judge-cache", str(tmp_path / "cache-direct"))
    assert direct.returncode == 0, direct.stderr
    assert _digests(out) == _digests(str(tmp_path / "direct"))
