"""The content-addressed score cache: a rerun judges nothing twice, a killed judge loses nothing."""
from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
from conftest import ROOT, run_args

from judgemine.pipelines.cli.parser import main
from judgemine.schemas import JUDGE_SCORES, SCORE_CACHE, list_parts, read_table
from judgemine.schemas.layout import RunLayout

SLOW_JUDGE = """
import sys, time
from judgemine.transforms.judge.backends.transformers import TransformersJudge
score = TransformersJudge.score
def slow(self, queries, candidates):
    time.sleep(1.0)
    return score(self, queries, candidates)
TransformersJudge.score = slow
from judgemine.pipelines.cli.parser import main
sys.exit(main(sys.argv[1:]))
"""


def _scores(out: str) -> dict:
    return {(r["query_id"], r["candidate_id"], r["is_positive"]): r["score"]
            for p in list_parts(RunLayout(out).stage("judge").path) for r in read_table(p, JUDGE_SCORES).to_pylist()}


def _cache_keys(out: str) -> list[str]:
    files = glob.glob(os.path.join(out, "cache", "judge", "scores-*.parquet"))
    return [k for f in files for k in read_table(f, SCORE_CACHE).column("key").to_pylist()]


def _record(out: str) -> dict:
    return json.load(open(RunLayout(out).stage("judge").record))


def test_a_rerun_is_served_from_the_cache(e2e_run, small_pairs, tiny_judge, tmp_path):
    out = str(tmp_path / "copy")
    shutil.copytree(e2e_run, out)
    before = _scores(out)
    assert main(["judge", *run_args(out, small_pairs, tiny_judge)]) == 0
    counts = _record(out)["counts"]
    assert counts["pairs_judged"] == 0 and counts["pairs_cached"] == counts["pairs"] == len(before)
    after = _scores(out)  # equal up to batch-composition noise: identical pairs of two queries share a key
    assert after.keys() == before.keys()
    assert np.allclose([after[k] for k in before], list(before.values()), atol=1e-5)
    # other mining settings or a rerun of the whole run judge nothing either
    assert main(["run", *run_args(out, small_pairs, tiny_judge, "--force", "--beta", "0.2")]) == 0
    assert _record(out)["counts"]["pairs_judged"] == 0


def test_killed_halfway_then_resumed_loses_nothing_and_judges_nothing_twice(e2e_run, small_pairs, tiny_judge,
                                                                           tmp_path):
    out = str(tmp_path / "killed")
    shutil.copytree(e2e_run, out)
    reference = _scores(out)
    shutil.rmtree(RunLayout(out).stage("judge").path)
    shutil.rmtree(os.path.join(out, "cache"))
    proc = subprocess.Popen([sys.executable, "-c", SLOW_JUDGE, "judge", *run_args(out, small_pairs, tiny_judge)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not _cache_keys(out) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not os.path.exists(RunLayout(out).stage("judge").path), "the judge finished before it could be killed"
    judged_before = len(_cache_keys(out))
    assert 0 < judged_before < len(reference)

    assert main(["judge", *run_args(out, small_pairs, tiny_judge)]) == 0
    counts = _record(out)["counts"]
    assert counts["pairs_cached"] == judged_before
    assert counts["pairs_judged"] + counts["pairs_repeated"] == counts["pairs"] - judged_before
    assert counts["pairs_repeated"] > 0  # queries with the same content share pairs, judged once in their chunk
    keys = _cache_keys(out)
    assert len(keys) == judged_before + counts["pairs_judged"]  # each pair judged once over both runs
    resumed = _scores(out)
    assert resumed == reference  # bit for bit: every pair was judged in its own chunk, in the same context
