"""Shared fixtures: a tiny judge built in the session, small real pair files, and one end-to-end run."""
from __future__ import annotations

import json
import os
import shutil

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "examples", "sample")
OFFICIAL_EXAMPLE = os.path.join(ROOT, "tests", "data", "unime_v2_example_data.json")


def write_jsonl(path: str, rows: list) -> str:
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write((r if isinstance(r, str) else json.dumps(r)) + "\n")
    return path


def head(path: str, n: int) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f][:n]


@pytest.fixture(scope="session")
def tiny_judge(tmp_path_factory) -> str:
    from pipelines.tiny_models import build_tiny_judge
    texts = [r["query_text"] for r in head(os.path.join(SAMPLE, "definitions.jsonl"), 98)]
    return build_tiny_judge(str(tmp_path_factory.mktemp("models") / "tiny-judge"), texts, seed=0)


@pytest.fixture(scope="session")
def small_pairs(tmp_path_factory) -> list[str]:
    """Three subsets of real sample pairs (one query with two positives) plus the bad rows file."""
    d = tmp_path_factory.mktemp("pairs")
    geo = head(os.path.join(SAMPLE, "geography_qa.jsonl"), 16)
    geo.append({"query_text": geo[0]["query_text"], "pos_text": "Paris, on the Seine, is France's capital."})
    defs = head(os.path.join(SAMPLE, "definitions.jsonl"), 20)
    para = head(os.path.join(SAMPLE, "paraphrases.jsonl"), 12)
    bad = os.path.join(d, "bad_rows.jsonl")
    shutil.copy(os.path.join(SAMPLE, "bad_rows.jsonl"), bad)
    return [write_jsonl(str(d / "geography_qa.jsonl"), geo), write_jsonl(str(d / "definitions.jsonl"), defs),
            write_jsonl(str(d / "paraphrases.jsonl"), para), bad]


def run_args(output: str, pairs: list[str], judge: str, *extra: str) -> list[str]:
    args = ["--output", output, "--judge-model", judge, "--chunk-size", "16", "--top-k", "12",
            "--num-negatives", "5", "--step", "3", "--direct_num_workers", "1"]
    for p in pairs:
        args += ["--pairs", p]
    return args + list(extra)


@pytest.fixture(scope="session")
def e2e_run(tmp_path_factory, small_pairs, tiny_judge) -> str:
    from pipelines.cli import main
    out = str(tmp_path_factory.mktemp("run") / "out")
    assert main(["run", *run_args(out, small_pairs, tiny_judge)]) == 0
    return out
