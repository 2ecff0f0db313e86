"""Readers and runs meet, both ways round, with real processes: a run paused in the middle of its first commit
(its fault log is a FIFO nobody reads yet, so it waits there holding the output) against `status`, `export`,
`report`, a second run after the lock file is deleted; a reader holding the output against a run; a trainer's
dataset made before a rerun and read after it."""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from conftest import SAMPLE, head, write_jsonl

JUDGEMINE = os.path.join(os.path.dirname(sys.executable), "judgemine")


def _args(pairs: str) -> list[str]:
    return ["--pairs", pairs, "--judge-backend", "similarity", "--top-k", "6", "--num-negatives", "2"]


@pytest.fixture(scope="module")
def committed(tmp_path_factory) -> tuple[str, str]:
    d = tmp_path_factory.mktemp("readers")
    pairs = write_jsonl(str(d / "defs.jsonl"), head(os.path.join(SAMPLE, "definitions.jsonl"), 40))
    out = str(d / "out")
    done = subprocess.run([JUDGEMINE, "run", "--output", out, *_args(pairs)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    return out, pairs


def jm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([JUDGEMINE, *args], capture_output=True, text=True, timeout=600)


def _holder_pid(out: str) -> int | None:
    try:
        return json.load(open(os.path.join(out, ".judgemine.lock")))["pid"]
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def paused(tmp_path, locked: str, *command: str) -> Iterator[subprocess.Popen]:
    """A judgemine command held at its first commit step (fault points append to a FIFO: the open waits for a
    reader), once it holds the folder `locked`; on leaving, a reader is opened and the command finishes."""
    fifo = str(tmp_path / "steps.fifo")
    os.mkfifo(fifo)
    proc = subprocess.Popen([JUDGEMINE, *command], env={**os.environ, "JUDGEMINE_FAULT_LOG": fifo},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while _holder_pid(locked) != proc.pid:
            assert proc.poll() is None and time.time() < deadline, "the run never held the output"
            time.sleep(0.2)
        yield proc
    finally:
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # the run's waiting open returns; the rest fit the pipe
        try:
            proc.wait(timeout=600)
        finally:
            os.close(reader)


def paused_run(out: str, pairs: str, tmp_path, *extra: str) -> contextlib.AbstractContextManager[subprocess.Popen]:
    """A run (--force) held at its first commit step."""
    return paused(tmp_path, out, "run", "--output", out, *_args(pairs), "--force", *extra)


def test_readers_during_a_run_are_told_it_runs_and_see_nothing_half_way(committed, tmp_path):
    out, pairs = committed
    with paused_run(out, pairs, tmp_path, "--beta", "0.3") as run:
        status = jm("status", "--output", out, *_args(pairs))
        assert status.returncode == 4 and status.stdout.startswith(f"running   (pid {run.pid} on ")
        export = jm("export", "--output", out, "--to", str(tmp_path / "x.json"))
        assert export.returncode == 4 and "is being written by a judgemine run" in export.stderr
        assert not os.path.exists(tmp_path / "x.json")
        assert jm("report", out).returncode == 4
    assert run.returncode == 0, run.stderr.read()
    assert jm("export", "--output", out, "--to", str(tmp_path / "x.json")).returncode == 0
    rows = len(json.load(open(tmp_path / "x.json")))
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    assert manifest["settings"]["beta"] == 0.3 and rows == manifest["accounting"]["rows_out"]


def test_deleting_the_lock_file_lets_no_second_run_in(committed, tmp_path):
    out, pairs = committed
    with paused_run(out, pairs, tmp_path) as first:
        os.remove(os.path.join(out, ".judgemine.lock"))
        second = jm("run", "--output", out, *_args(pairs), "--force")
        assert second.returncode == 4 and "is in use by another judgemine run" in second.stderr
        assert first.poll() is None
    assert first.returncode == 0, first.stderr.read()
    assert jm("status", "--output", out, *_args(pairs)).returncode == 0


def test_a_run_waits_for_no_reader_it_is_refused_while_one_reads(committed):
    """An export holds the output shared: a run started meanwhile is refused (it would delete the export's
    temporary file and swap the shards under it), and runs once the reader is done."""
    from judgemine.pipelines.run.lock import read_lock
    out, pairs = committed
    with read_lock(out):
        done = jm("run", "--output", out, *_args(pairs))
        assert done.returncode == 4 and "read by an export, report or status" in done.stderr
    assert jm("run", "--output", out, *_args(pairs)).returncode == 0


def test_a_dataset_made_before_a_rerun_never_mixes_two_runs(committed, tmp_path):
    from judgemine.schemas.shard_dataset import ShardDataset
    out, pairs = committed
    dataset = ShardDataset(os.path.join(out, "shards"), skip_fallback=False)
    assert jm("run", "--output", out, *_args(pairs), "--beta", "0.2").returncode == 0
    with pytest.raises(RuntimeError, match="was replaced by another run"):
        list(dataset)
    again = ShardDataset(os.path.join(out, "shards"), skip_fallback=False)
    assert len(list(again)) == json.load(open(os.path.join(out, "manifest.json")))["accounting"]["rows_out"]


def test_a_pairs_file_replaced_while_ingest_reads_it_is_never_committed(tmp_path):
    """The file is replaced after the stage hashed it, while the run reads it or waits at its first commit step
    (its fault log a FIFO nobody reads yet); released, the run fails naming the file, and nothing is committed."""
    pairs = write_jsonl(str(tmp_path / "defs.jsonl"), head(os.path.join(SAMPLE, "definitions.jsonl"), 20))
    out = str(tmp_path / "out")
    with paused(tmp_path, out, "ingest", "--output", out, "--pairs", pairs) as proc:
        started, deadline = os.path.join(out, "stages", f"ingest.tmp-{proc.pid}"), time.time() + 300
        while not os.path.exists(started):  # its inputs are hashed before this folder is made
            assert proc.poll() is None and time.time() < deadline, "the run never started its stage"
            time.sleep(0.2)
        replaced = write_jsonl(str(tmp_path / "new.jsonl"), head(os.path.join(SAMPLE, "paraphrases.jsonl"), 5))
        os.replace(replaced, pairs)
    err = proc.stderr.read()
    assert proc.returncode == 1 and f"{pairs} changed while the stage read it" in err, err
    assert not os.path.exists(os.path.join(out, "stages", "ingest", "stage.json"))


def test_an_output_link_retargeted_mid_run_does_not_move_the_run(tmp_path):
    """--output through a link: the run resolves it once; the link pointed elsewhere while the run waits at its
    first commit step sends no stage into the other folder (another run's, with its own lock)."""
    pairs = write_jsonl(str(tmp_path / "defs.jsonl"), head(os.path.join(SAMPLE, "definitions.jsonl"), 20))
    real, other, link = str(tmp_path / "real"), str(tmp_path / "other"), str(tmp_path / "link")
    assert jm("run", "--output", other, *_args(pairs)).returncode == 0
    before = {os.path.join(d, n): os.stat(os.path.join(d, n)).st_mtime_ns for d, _, ns in os.walk(other) for n in ns}
    os.makedirs(real)
    os.symlink(real, link)
    with paused(tmp_path, real, "run", "--output", link, *_args(pairs)) as proc:
        os.remove(link)
        os.symlink(other, link)
    assert proc.returncode == 0, proc.stderr.read()
    assert os.path.exists(os.path.join(real, "stages", "mine", "stage.json"))
    assert os.path.exists(os.path.join(real, "manifest.json"))
    after = {os.path.join(d, n): os.stat(os.path.join(d, n)).st_mtime_ns for d, _, ns in os.walk(other) for n in ns}
    assert after == before
