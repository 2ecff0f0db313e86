"""A judge stage killed inside a chunk keeps what it judged (`make test-faults`): the demo's pairs at K = 200 as
one chunk (57k pairs, about 40 s: the whole stage is one unit of work, as a 4,096-query chunk is at scale),
SIGKILLed at random moments several times, loses at most the checkpoint interval plus one group each time, and
the final run judges only the rest and writes the same shards, byte for byte, as a run never killed; SIGTERM
keeps everything judged so far."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pyarrow.parquet as pq
import pytest
from conftest import ROOT

JUDGEMINE = os.path.join(os.path.dirname(sys.executable), "judgemine")
EVERY = 3.0  # --judge-checkpoint-seconds, the default minute scaled to this test's 40-second stage
GROUP_SECONDS = 2.0  # a 512-pair group of the tiny judge takes under half a second here


def _args(out: str, judge: str, *extra: str) -> list[str]:
    return ["--config", os.path.join(ROOT, "examples", "demo.yaml"), "--output", out, "--judge-model", judge,
            "--chunk-size", "4096", "--top-k", "200", "--no-report", "--direct_num_workers", "1", *extra]


def _cached(out: str) -> int:
    folder = os.path.join(out, "cache", "judge")
    if not os.path.isdir(folder):
        return 0
    return sum(pq.read_metadata(os.path.join(folder, n)).num_rows for n in os.listdir(folder)
               if n.startswith("scores-") and n.endswith(".parquet"))


def _published(out: str) -> dict[str, bytes]:
    return {os.path.join(d, n)[len(out):]: open(os.path.join(d, n), "rb").read()
            for folder in ("shards", "rejects") for d, _, names in sorted(os.walk(os.path.join(out, folder)))
            for n in sorted(names)}


class _Watched:
    """`judgemine run` with its stderr lines read as they come, each with the moment it was read."""

    def __init__(self, args: list[str]) -> None:
        self.lines: list[tuple[float, str]] = []
        self.proc = subprocess.Popen([JUDGEMINE, "run", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True, start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append((time.monotonic(), line))

    def wait_for(self, text: str, timeout: float = 300) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen = [t for t, line in self.lines if text in line]
            if seen:
                return seen[0]
            assert self.proc.poll() is None, "".join(line for _, line in self.lines)[-3000:]
            time.sleep(0.05)
        raise AssertionError(f"no {text!r} within {timeout} s")

    def stop(self, signum: int) -> int:
        os.killpg(self.proc.pid, signum)
        code = self.proc.wait(timeout=120)
        self._reader.join(timeout=10)
        return code


@pytest.fixture(scope="module")
def never_killed(tmp_path_factory, tiny_judge) -> str:
    out = str(tmp_path_factory.mktemp("clean") / "out")
    done = subprocess.run([JUDGEMINE, "run", *_args(out, tiny_judge)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def _retrieved(out: str, judge: str, *extra: str) -> list[str]:
    """The stages before the judge, committed: a run started now begins with the judge stage."""
    args = _args(out, judge, *extra)
    for stage in ("ingest", "embed", "index", "retrieve"):
        done = subprocess.run([JUDGEMINE, stage, *args], capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
    return args


def test_sigkill_at_random_moments_loses_at_most_a_checkpoint_and_the_end_is_byte_identical(
        never_killed, tiny_judge, tmp_path):
    out = str(tmp_path / "out")
    args = _retrieved(out, tiny_judge, "--judge-checkpoint-seconds", str(EVERY))
    rng = random.Random(0)
    kept = [0]
    for attempt in range(4):
        run = _Watched(args)
        started = run.wait_for(" pairs")  # the stage's first progress line, 5 s in: the tiny judge loads in 1
        time.sleep(rng.uniform(EVERY + GROUP_SECONDS, 4 * EVERY))
        killed_at = time.monotonic()
        assert run.stop(signal.SIGKILL) == -signal.SIGKILL
        kept.append(_cached(out))
        saves = [t for t, line in run.lines if "kept in the score cache" in line]
        assert saves, f"attempt {attempt}: nothing kept in {killed_at - started:.1f} s of judging"
        lost = killed_at - saves[-1]
        assert lost <= EVERY + GROUP_SECONDS + 2.0, f"attempt {attempt}: {lost:.1f} s of judging lost"
        assert kept[-1] > kept[-2], kept
        assert not os.path.exists(os.path.join(out, "stages", "judge", "stage.json"))
    done = subprocess.run([JUDGEMINE, "run", *args], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    counts = json.load(open(os.path.join(out, "stages", "judge", "stage.json")))["counts"]
    assert counts["pairs_cached"] == kept[-1] and counts["pairs_judged"] == counts["pairs"] - kept[-1]
    assert counts["pairs_judged"] > 0
    assert _published(out) == _published(never_killed)


def test_sigterm_inside_a_chunk_keeps_what_was_judged_with_the_default_minute(never_killed, tiny_judge, tmp_path):
    """A scheduler's cancel (SIGTERM) seconds into a chunk, long before the first minute's checkpoint: the
    groups judged so far are kept on the way out, and the rerun judges only the rest."""
    out = str(tmp_path / "out")
    args = _retrieved(out, tiny_judge)
    run = _Watched(args)
    run.wait_for(" pairs")  # the stage's first progress line, 5 s in
    time.sleep(4)
    assert run.stop(signal.SIGTERM) == 143
    kept = _cached(out)
    assert kept >= 512, kept  # at least the first group
    done = subprocess.run([JUDGEMINE, "run", *args], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    counts = json.load(open(os.path.join(out, "stages", "judge", "stage.json")))["counts"]
    assert counts["pairs_cached"] == kept
    assert _published(out) == _published(never_killed)
