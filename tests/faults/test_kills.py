"""Real processes, real kills (`make test-faults`): `judgemine` killed with SIGKILL at every step of every
stage's commit (pipelines/run/commit.py's fault points), then rerun: the result equals a clean run byte for byte,
nothing is left behind, and no killed stage is ever reported up to date. Also two runs on one output, and the
exit code of repeated successful runs."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest
from conftest import run_args

from judgemine.pipelines.stages import STAGES

JUDGEMINE = os.path.join(os.path.dirname(sys.executable), "judgemine")
TEMPORARY = re.compile(r"\.(tmp|old)-\d+$")


def _judgemine(command: str, out: str, pairs: list[str], judge: str, *extra: str, fault: str = "",
               log: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "JUDGEMINE_FAULT_AT": fault, "JUDGEMINE_FAULT_LOG": log}
    return subprocess.run([JUDGEMINE, command, *run_args(out, pairs, judge), *extra], env=env,
                          capture_output=True, text=True, timeout=600)


def _published(out: str) -> dict[str, bytes]:
    """Every file a trainer or an auditor reads: shards and rejects, byte for byte."""
    files = {}
    for folder in ("shards", "rejects"):
        for d, _, names in os.walk(os.path.join(out, folder)):
            for name in names:
                files[os.path.relpath(os.path.join(d, name), out)] = open(os.path.join(d, name), "rb").read()
    return dict(sorted(files.items()))


def _leftovers(out: str) -> list[str]:
    return [os.path.join(d, n) for d, dirs, names in os.walk(out) for n in dirs + names if TEMPORARY.search(n)]


def _states(out: str, pairs: list[str], judge: str, *extra: str) -> dict[str, str]:
    done = _judgemine("status", out, pairs, judge, *extra)
    assert done.returncode in (0, 3), done.stderr
    return {line[:9].strip(): line[10:21].strip() for line in done.stdout.splitlines() if line.strip()}


def _points(log: str) -> list[str]:
    with open(log, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


@pytest.fixture(scope="module")
def clean(tmp_path_factory, small_pairs, tiny_judge) -> dict[str, object]:
    """Clean runs with beta 0.01 (A) and 0.3 (B), and the commit steps a fresh run passes."""
    base = tmp_path_factory.mktemp("clean")
    log = str(base / "points.txt")
    a, b = str(base / "a"), str(base / "b")
    assert _judgemine("run", a, small_pairs, tiny_judge, log=log).returncode == 0
    assert _judgemine("run", b, small_pairs, tiny_judge, "--beta", "0.3").returncode == 0
    assert _published(a) != _published(b)
    return {"a": _published(a), "b": _published(b), "points": _points(log)}


def _kill_at(point: str, out: str, pairs: list[str], judge: str, *extra: str, command: str = "run") -> None:
    done = _judgemine(command, out, pairs, judge, *extra, fault=point)
    assert done.returncode == -9, f"not killed at {point}: rc {done.returncode}\n{done.stderr[-2000:]}"
    stage = point.split(":")[0]
    assert _states(out, pairs, judge, *extra)[stage] != "up to date", f"killed at {point}, reported up to date"


def test_a_kill_at_every_commit_step_of_a_fresh_run_then_a_rerun_equals_a_clean_run(
        clean, small_pairs, tiny_judge, tmp_path):
    points = clean["points"]
    assert {p.split(":")[0] for p in points} == {s.name for s in STAGES} and len(points) >= 2 * len(STAGES)
    out = str(tmp_path / "out")
    for point in points:  # each run resumes what the last one left and dies one step further
        _kill_at(point, out, small_pairs, tiny_judge)
    done = _judgemine("run", out, small_pairs, tiny_judge)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _published(out) == clean["a"] and not _leftovers(out)
    assert set(_states(out, small_pairs, tiny_judge).values()) == {"up to date"}


def test_a_rerun_with_a_new_beta_killed_at_every_mine_step_never_leaves_old_negatives(
        clean, small_pairs, tiny_judge, tmp_path):
    out = str(tmp_path / "out")
    assert _judgemine("run", out, small_pairs, tiny_judge).returncode == 0
    log = str(tmp_path / "mine-points.txt")
    assert _judgemine("mine", out, small_pairs, tiny_judge, log=log).returncode == 0  # the steps over a run
    points = _points(log)
    assert "mine:shards:old-moved" in points and "mine:manifest" in points
    for point in points:
        _kill_at(point, out, small_pairs, tiny_judge, "--beta", "0.3")
        done = subprocess.run([JUDGEMINE, "export", "--output", out, "--to", str(tmp_path / "x.json")],
                              capture_output=True, text=True)  # readers refuse what is not committed
        assert done.returncode == 2 and "has no committed mine stage" in done.stderr
    done = _judgemine("run", out, small_pairs, tiny_judge, "--beta", "0.3")
    assert done.returncode == 0 and "mine: up to date" not in done.stderr
    assert _published(out) == clean["b"] and not _leftovers(out)


@pytest.mark.parametrize("stage", [s.name for s in STAGES[:-1]])
def test_a_stage_rerun_killed_at_each_step_is_rebuilt_by_the_next_run(clean, small_pairs, tiny_judge, tmp_path,
                                                                     stage):
    out = str(tmp_path / "out")
    assert _judgemine("run", out, small_pairs, tiny_judge).returncode == 0
    log = str(tmp_path / "points.txt")
    assert _judgemine(stage, out, small_pairs, tiny_judge, log=log).returncode == 0
    for point in _points(log):
        _kill_at(point, out, small_pairs, tiny_judge, command=stage)
    done = _judgemine("run", out, small_pairs, tiny_judge)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{stage}: up to date" not in done.stderr
    assert _published(out) == clean["a"] and not _leftovers(out)


def test_two_runs_on_one_output_the_second_refused_at_once(clean, small_pairs, tiny_judge, tmp_path):
    out = str(tmp_path / "out")
    first = subprocess.Popen([JUDGEMINE, "run", *run_args(out, small_pairs, tiny_judge)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = os.path.join(out, ".judgemine.lock")
    deadline = time.time() + 60
    while not (os.path.exists(lock) and os.path.getsize(lock)) and time.time() < deadline:
        time.sleep(0.2)
    started = time.time()
    second = _judgemine("run", out, small_pairs, tiny_judge, "--top-k", "5")
    assert second.returncode == 4 and time.time() - started < 30
    assert f"pid {first.pid}" in second.stderr and second.stderr.strip().count("\n") == 0
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-2000:]
    assert _published(out) == clean["a"]


def test_successful_runs_exit_0_every_time(small_pairs, tiny_judge, tmp_path):
    """The exit code a scheduler records: repeated runs in fresh processes, each with Beam, torch and the
    judge loaded, and the interpreter's teardown."""
    out = str(tmp_path / "out")
    codes = [_judgemine("run", out, small_pairs, tiny_judge).returncode]
    codes += [_judgemine(stage, out, small_pairs, tiny_judge).returncode
              for _ in range(3) for stage in ("embed", "judge", "mine")]
    assert codes == [0] * len(codes)
