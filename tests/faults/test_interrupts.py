"""Ctrl-C and SIGTERM sent to a real `judgemine run` while a stage runs (its temporary folder exists): one line
naming the stage, exit 130 / 143, no traceback, nothing temporary left unsaid, and a rerun resumes to the same
shards as a clean run."""
from __future__ import annotations

import glob
import os
import signal
import subprocess
import time

import pytest
from conftest import run_args
from test_kills import JUDGEMINE, _leftovers, _published


def _run(out: str, pairs: list[str], judge: str) -> subprocess.CompletedProcess:
    return subprocess.run([JUDGEMINE, "run", *run_args(out, pairs, judge)], capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def clean_shards(tmp_path_factory, small_pairs, tiny_judge) -> dict[str, bytes]:
    out = str(tmp_path_factory.mktemp("clean") / "run")
    assert _run(out, small_pairs, tiny_judge).returncode == 0
    return _published(out)


@pytest.mark.parametrize("sig,stage", [(signal.SIGINT, "judge"), (signal.SIGTERM, "judge"),
                                       (signal.SIGTERM, "embed")])
def test_a_signal_ends_the_run_in_one_line_and_a_rerun_resumes(tmp_path, small_pairs, tiny_judge, clean_shards,
                                                                 sig, stage):
    out = str(tmp_path / "run")
    proc = subprocess.Popen([JUDGEMINE, "run", *run_args(out, small_pairs, tiny_judge)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not glob.glob(os.path.join(out, "stages", f"{stage}.tmp-*")) and proc.poll() is None:
        assert time.time() < deadline, f"{stage} never started"
        time.sleep(0.01)
    assert proc.poll() is None, f"the run ended before {stage} could be interrupted"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err
    lines = [line for line in err.splitlines() if not line[:4].isdigit()]  # the progress lines have timestamps
    assert lines[0] == (f"judgemine: interrupted ({signal.Signals(sig).name}) in {stage}; committed stages are "
                        "kept: rerun the same command to resume"), err
    left = _leftovers(out)
    assert lines[1:] == ([f"judgemine: the next run removes what this one left: {', '.join(left)}"] if left else [])
    assert "Traceback" not in err
    assert not os.path.exists(os.path.join(out, "stages", stage, "stage.json"))
    again = _run(out, small_pairs, tiny_judge)
    assert again.returncode == 0, again.stderr
    assert f"{stage}: done" in again.stderr and "ingest: up to date, skipped" in again.stderr
    assert _published(out) == clean_shards
    assert not _leftovers(out)
