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
    from judgemine.testing.tiny_models import build_tiny_judge
    texts = [r["query_text"] for r in head(os.path.join(SAMPLE, "definitions.jsonl"), 98)]
    return build_tiny_judge(str(tmp_path_factory.mktemp("models") / "tiny-judge"), texts, seed=0)


MULTIMODAL = os.path.join(ROOT, "examples", "multimodal")


@pytest.fixture(scope="session")
def image_root(tmp_path_factory) -> str:
    """The multimodal sample's image root: the real photos (copied from scikit-image/-learn) and the bad files."""
    from bench.sample_pairs import copy_demo_images
    root = copy_demo_images(str(tmp_path_factory.mktemp("image_root")))
    shutil.copytree(os.path.join(MULTIMODAL, "bad"), os.path.join(root, "bad"))
    return root


def _multimodal_texts() -> list[str]:
    rows = head(os.path.join(MULTIMODAL, "pairs_mmeb.jsonl"), 100) + head(os.path.join(MULTIMODAL, "pairs_unime.jsonl"),
                                                                          100)
    return [v for r in rows for v in r.values() if isinstance(v, str)]


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> str:
    from judgemine.testing.tiny_models import build_tiny_clip
    return build_tiny_clip(str(tmp_path_factory.mktemp("models") / "tiny-clip"), _multimodal_texts())


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory) -> str:
    from judgemine.testing.tiny_models import build_tiny_qwen2_vl
    return build_tiny_qwen2_vl(str(tmp_path_factory.mktemp("models") / "tiny-qwen2-vl"), _multimodal_texts())


@pytest.fixture(scope="session")
def tiny_idefics3(tmp_path_factory) -> str:
    from judgemine.testing.tiny_models import build_tiny_idefics3
    return build_tiny_idefics3(str(tmp_path_factory.mktemp("models") / "tiny-idefics3"), _multimodal_texts())


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
    """The small runs' flags; without `output` when it is "" (the caller names it)."""
    args = (["--output", output] if output else []) + [
        "--judge-model", judge, "--chunk-size", "16", "--top-k", "12", "--num-negatives", "5", "--step", "3",
        "--direct_num_workers", "1"]
    for p in pairs:
        args += ["--pairs", p]
    return args + list(extra)


@pytest.fixture(scope="session")
def e2e_run(tmp_path_factory, small_pairs, tiny_judge) -> str:
    from judgemine.pipelines.cli import main
    out = str(tmp_path_factory.mktemp("run") / "out")
    assert main(["run", *run_args(out, small_pairs, tiny_judge)]) == 0
    return out


@pytest.fixture(scope="session")
def image_run(tmp_path_factory, tiny_clip, tiny_vlm, image_root) -> str:
    """The multimodal sample (examples/demo_images.yaml) mined with the tiny CLIP and Qwen2-VL."""
    from judgemine.pipelines.cli import main
    out = str(tmp_path_factory.mktemp("mm") / "out")
    args = ["--config", os.path.join(ROOT, "examples", "demo_images.yaml"), "--output", out, "--image-root",
            image_root, "--embed-model", tiny_clip, "--judge-model", tiny_vlm, "--direct_num_workers", "1"]
    assert main(["run", *args]) == 0
    return out
