"""Shared fixtures: a tiny judge built in the session, small real pair files, and one end-to-end run."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

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


# Fixtures that build models or run pipelines: a test using one is slow (`make test-fast` leaves it out).
SLOW_FIXTURES = {"tiny_judge", "tiny_clip", "tiny_vlm", "tiny_idefics3", "image_root", "small_pairs", "e2e_run",
                 "image_run", "prov_pairs", "similarity_run", "run_copy"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def tiny_judge(tmp_path_factory) -> str:
    from judgemine.testing.tiny_models import build_tiny_judge
    texts = [r["query_text"] for r in head(os.path.join(SAMPLE, "definitions.jsonl"), 98)]
    return build_tiny_judge(str(tmp_path_factory.mktemp("models") / "tiny-judge"), texts, seed=0)


MULTIMODAL = os.path.join(ROOT, "examples", "multimodal")


@pytest.fixture(scope="session")
def image_root(tmp_path_factory) -> str:
    """The multimodal sample's image root: the real photos (copied from scikit-image/-learn) and the bad files."""
    from judgemine.testing.sample_pairs import copy_demo_images
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
    from judgemine.pipelines.cli.parser import main
    out = str(tmp_path_factory.mktemp("run") / "out")
    assert main(["run", *run_args(out, small_pairs, tiny_judge)]) == 0
    return out


@pytest.fixture(scope="session")
def image_run(tmp_path_factory, tiny_clip, tiny_vlm, image_root) -> str:
    """The multimodal sample (examples/demo_images.yaml) mined with the tiny CLIP and Qwen2-VL."""
    from judgemine.pipelines.cli.parser import main
    out = str(tmp_path_factory.mktemp("mm") / "out")
    args = ["--config", os.path.join(ROOT, "examples", "demo_images.yaml"), "--output", out, "--image-root",
            image_root, "--embed-model", tiny_clip, "--judge-model", tiny_vlm, "--direct_num_workers", "1"]
    assert main(["run", *args]) == 0
    return out


# Real processes of the `judgemine` command (the provenance, readers and limits tests).
JUDGEMINE = os.path.join(os.path.dirname(sys.executable), "judgemine")


def jm(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([JUDGEMINE, *args], capture_output=True, text=True, timeout=timeout)


def jm_env(env: dict[str, str], *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """The command with another environment (a plugin distribution on PYTHONPATH)."""
    return subprocess.run([JUDGEMINE, *args], capture_output=True, text=True, timeout=timeout, env=env)


def status_of(out: str, *args: str) -> tuple[int, dict[str, str], str]:
    """`status`'s exit code, {stage: state} and its whole output."""
    from judgemine.pipelines.stages import STAGES
    done = jm("status", "--output", out, *args)
    stages = {s.name for s in STAGES}
    found = {line[:9].strip(): line[10:21].strip() for line in done.stdout.splitlines() if line[:9].strip() in stages}
    return done.returncode, found, done.stdout


def manifest_of(out: str) -> dict:
    with open(os.path.join(out, "manifest.json"), encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="session")
def prov_pairs(tmp_path_factory) -> list[str]:
    d = tmp_path_factory.mktemp("prov")
    return [write_jsonl(str(d / "geo.jsonl"), head(os.path.join(SAMPLE, "geography_qa.jsonl"), 24)),
            write_jsonl(str(d / "defs.jsonl"), head(os.path.join(SAMPLE, "definitions.jsonl"), 24))]


def default_args(pairs: list[str], *extra: str) -> list[str]:
    """The defaults a user gets (no --chunk-size), small K and m."""
    return [a for p in pairs for a in ("--pairs", p)] + ["--top-k", "8", "--num-negatives", "3", "--step", "2", *extra]


@pytest.fixture(scope="session")
def similarity_run(tmp_path_factory, prov_pairs) -> str:
    out = str(tmp_path_factory.mktemp("sim") / "out")
    done = jm("run", "--output", out, *default_args(prov_pairs, "--judge-backend", "similarity"))
    assert done.returncode == 0, done.stderr
    return out


def copy_run(run: str, tmp_path) -> str:
    out = str(tmp_path / "out")
    shutil.copytree(run, out)
    return out


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_vllm(model: str, *extra: str, max_len: int = 1024):
    """A real `vllm serve` process on 127.0.0.1, yielded as its URL once healthy, stopped after (`vllm serve`
    itself, not judgemine, sizes its KV cache: 1 GiB)."""
    import time

    import httpx
    port = free_port()
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model, "--dtype", "float32",
           "--host", "127.0.0.1", "--port", str(port), "--max-model-len", str(max_len), "--enforce-eager",
           "--block-size", "32", "--gpu-memory-utilization", "0.3", *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            assert proc.poll() is None, "the vLLM server exited during start-up"
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(1)
        else:
            pytest.fail("the vLLM server did not start in 300 s")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=60)
