"""The plugin contract: a judge backend, an embedder and an export format from outside judgemine, each one module
(tests/plugins/) plus one entry point line, installed at test time as a distribution's metadata on PYTHONPATH
(as `pip install` of a plugin package would leave it), run through the real `judgemine` command with an option
of its own; the option reaches the backend and shapes the stages it declares."""
from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import ROOT, jm_env, run_args

from judgemine.schemas.commits import committed_shards

PLUGINS = os.path.join(ROOT, "tests", "plugins")
ENTRY_POINTS = """[judgemine.judges]
toy = toy_judge:ToyJudge

[judgemine.embedders]
toy-hash = toy_embedder:HashEmbedder

[judgemine.exports]
toy-tsv = toy_export:SeparatedExport
"""


def _site(site: Any, version: str) -> dict[str, str]:
    """The three plugins' distribution at `version`: its modules on the path, its metadata naming their entry
    points."""
    info = site / f"judgemine_toys-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: judgemine-toys\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), PLUGINS])}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, str]:
    return _site(tmp_path_factory.mktemp("site"), "0.1")


@pytest.fixture(scope="module")
def toy_run(installed, tmp_path_factory, small_pairs, tiny_judge) -> str:
    out = str(tmp_path_factory.mktemp("toys") / "out")
    done = jm_env(installed, "run", *run_args(out, small_pairs, tiny_judge), "--embed-backend", "toy-hash",
                  "--embed-model", tiny_judge, "--toy-hash-dim", "24", "--judge-backend", "toy",
                  "--toy-judge-bias", "0.25", "--no-report")
    assert done.returncode == 0, done.stderr
    return out


@pytest.mark.slow
def test_the_plugins_options_are_flags_in_their_own_sections(installed):
    done = jm_env(installed, "run", "--help")
    assert done.returncode == 0
    for text in ("judge: toy settings", "--toy-judge-bias", "embed: toy-hash settings", "--toy-hash-dim",
                 "{transformers,vllm,openai,cross-encoder,similarity,toy}"):
        assert text in done.stdout, text
    done = jm_env(installed, "export", "--help")
    assert "--format toy-tsv options" in done.stdout and "--toy-tsv-separator" in done.stdout


def test_a_toy_judge_and_embedder_mine_with_their_own_options(toy_run, small_pairs):
    import sys
    sys.path.insert(0, PLUGINS)
    from toy_judge import toy_score
    manifest = json.load(open(os.path.join(toy_run, "manifest.json")))
    assert manifest["run"]["models"]["judge"]["backend"] == "toy"
    assert manifest["settings"]["toy_judge_bias"] == 0.25 and manifest["settings"]["toy_hash_dim"] == 24
    parts, _ = committed_shards(toy_run)
    rows = [r for p in parts for r in pq.read_table(p).to_pylist()]
    assert rows and manifest["accounting"]["balanced"]
    for row in rows:  # the bias reached the backend: every positive's score is the toy formula's
        assert row["pos_score"] == pytest.approx(toy_score(row["query_text"], row["pos_text"], 0.25), abs=1e-6)
    vectors = pq.read_table(os.path.join(toy_run, "stages", "embed", "queries", "part-00000.parquet"))
    assert len(vectors.column("vector")[0].as_py()) == 24  # the embedder's option, through its spec
    assert np.isfinite([r["pos_score"] for r in rows]).all()


def test_a_plugins_option_shapes_the_stages_it_declares(installed, toy_run, small_pairs, tiny_judge):
    args = [*run_args(toy_run, small_pairs, tiny_judge), "--embed-backend", "toy-hash", "--embed-model", tiny_judge,
            "--judge-backend", "toy"]
    same = jm_env(installed, "status", *args, "--toy-hash-dim", "24", "--toy-judge-bias", "0.25")
    assert same.returncode == 0, same.stdout + same.stderr
    judge_only = jm_env(installed, "status", *args, "--toy-hash-dim", "24", "--toy-judge-bias", "0.5")
    states = dict(line.split()[:2] for line in judge_only.stdout.splitlines() if line.split()[0] != "report")
    assert judge_only.returncode == 3 and states == {"ingest": "up", "embed": "up", "index": "up", "retrieve": "up",
                                                     "judge": "stale", "mine": "stale"}
    embed_too = jm_env(installed, "status", *args, "--toy-hash-dim", "16", "--toy-judge-bias", "0.25")
    assert [line.split()[:2] for line in embed_too.stdout.splitlines()][1] == ["embed", "stale"]


def test_another_version_of_the_plugins_is_other_code(toy_run, small_pairs, tiny_judge, tmp_path):
    """The same options with the plugins' distribution upgraded: the stages the plugins ran are stale."""
    upgraded = _site(tmp_path, "0.2")
    done = jm_env(upgraded, "status", *run_args(toy_run, small_pairs, tiny_judge), "--embed-backend", "toy-hash",
                  "--embed-model", tiny_judge, "--judge-backend", "toy", "--toy-hash-dim", "24",
                  "--toy-judge-bias", "0.25")
    states = dict(line.split()[:2] for line in done.stdout.splitlines() if line.split()[0] != "report")
    assert done.returncode == 3 and states["ingest"] == "up" and states["embed"] == states["judge"] == "stale"


def test_a_toy_export_writes_with_its_own_option(installed, toy_run, tmp_path):
    dest = str(tmp_path / "toy.tsv")
    done = jm_env(installed, "export", "--output", toy_run, "--format", "toy-tsv", "--toy-tsv-separator", " || ",
                  "--to", dest)
    assert done.returncode == 0, done.stderr
    lines = open(dest, encoding="utf-8").read().splitlines()
    assert lines and len(lines) == int(done.stdout.split()[0])  # "N records -> ..."
    assert all(len(line.split(" || ")) >= 3 for line in lines)
    wrong = jm_env(installed, "export", "--output", toy_run, "--format", "unime", "--toy-tsv-separator", ";",
                   "--to", str(tmp_path / "x.json"))
    assert wrong.returncode == 2 and "--toy-tsv-separator is an option of --format toy-tsv" in wrong.stderr


def test_without_the_distribution_its_names_are_unknown(small_pairs, tiny_judge, tmp_path):
    done = jm_env(dict(os.environ), "run", *run_args(str(tmp_path / "out"), small_pairs, tiny_judge),
                  "--judge-backend", "toy")
    assert done.returncode == 2 and "invalid choice: 'toy'" in done.stderr
