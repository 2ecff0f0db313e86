"""The real-weight tier (`make test-real`): Qwen2.5-Coder-0.5B-Instruct and Qwen2.5-Coder-1.5B-Instruct as judges and
all-mpnet-base-v2 as the embedder, built by testing/real_models.py into a cached folder outside git
(JUDGEMINE_REAL_MODELS). For each judge, every judge backend, with its default settings, gives the same scores on
real weights as the transformers backend; packed equals plain; the prompt and answer tokens are the ones Qwen's own
chat template gives; mpnet embeds through the sentence-transformers backend as sentence-transformers itself does."""
from __future__ import annotations

import gc
import json
import os

import numpy as np
import pytest
from conftest import SAMPLE, serve_vllm

from judgemine.testing.real_models import FOLDER
from judgemine.transforms.common.sides import Side
from judgemine.transforms.judge.base import JudgeModel

JUDGES = {"0.5b": os.path.join(FOLDER, "judge"), "1.5b": os.path.join(FOLDER, "judge-1.5b")}
EMBEDDER = os.path.join(FOLDER, "embedder")
QWEN_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."


def _sample(queries: int = 8, per_query: int = 6) -> tuple[list[Side], list[Side]]:
    """Real definitions: each query with its own positive and the positives of the next queries."""
    with open(os.path.join(SAMPLE, "definitions.jsonl"), encoding="utf-8") as f:
        rows = [json.loads(line) for line in f][:queries + per_query]
    qs, cs = [], []
    for i in range(queries):
        for j in range(per_query):
            qs.append(Side(rows[i]["query_text"]))
            cs.append(Side(rows[(i + j) % len(rows)]["pos_text"]))
    return qs, cs


PAIRS = _sample()


@pytest.fixture(scope="module", params=sorted(JUDGES))
def judge(request) -> str:
    """Each real judge's folder in turn (the tests of one judge run together: its plain scores are computed once)."""
    return JUDGES[request.param]


@pytest.fixture(scope="module")
def plain(judge):
    from judgemine.transforms.judge.backends.transformers import TransformersJudge, TransformersOptions
    model = TransformersJudge(JudgeModel(judge, device="cpu", batch_size=8), TransformersOptions(judge_packing="none"))
    return model.score(*PAIRS)


def test_the_models_are_the_real_ones(judge):
    assert os.path.getsize(os.path.join(judge, "model.safetensors")) > 1e9, "run `make test-real` (builds them)"
    assert os.path.getsize(os.path.join(EMBEDDER, "model.safetensors")) > 4e8


def test_the_prompt_and_answer_tokens_are_qwens_own(judge):
    """The SPEC's user turn through the folder's chat template is Qwen's ChatML with its default system turn,
    character for character; "Yes" and "No" are single tokens, the ids the judge reads."""
    from transformers import AutoTokenizer

    from judgemine.transforms.judge.chat import ChatPrompter
    from judgemine.transforms.judge.prompt import INSTRUCTION
    tokenizer = AutoTokenizer.from_pretrained(judge, local_files_only=True)
    prompter = ChatPrompter(tokenizer, vision_model=False)
    query, candidate = PAIRS[0][0], PAIRS[1][0]
    expected = (f"<|im_start|>system\n{QWEN_SYSTEM}<|im_end|>\n<|im_start|>user\n{INSTRUCTION}\nQuery: {query.text}\n"
                f"Candidate: {candidate.text}<|im_end|>\n<|im_start|>assistant\n")
    assert prompter.text(query, candidate) == expected
    assert [prompter.yes_id] == tokenizer.encode("Yes") and [prompter.no_id] == tokenizer.encode("No")
    assert tokenizer.decode([prompter.yes_id]) == "Yes" and tokenizer.decode([prompter.no_id]) == "No"


def test_packed_equals_plain_in_fp32(judge, plain):
    """The transformers backend's default (packed behind each query's shared prefix) against every prompt whole."""
    from judgemine.transforms.judge.backends.transformers import TransformersJudge
    packed = TransformersJudge(JudgeModel(judge, device="cpu"), TransformersJudge.Options()).score(*PAIRS)
    assert np.abs(packed - plain).max() < 1e-4
    assert np.std(plain) > 0.01  # real scores, not a constant


@pytest.fixture
def server(judge):  # stopped after its test, before the offline engine (which keeps its memory in this process)
    yield from serve_vllm(judge, max_len=2048)


def test_a_real_vllm_server_agrees_with_transformers(judge, plain, server):
    from judgemine.transforms.judge.backends.openai import OpenAIServerJudge, ServerOptions
    model = OpenAIServerJudge(JudgeModel(judge), ServerOptions(judge_server_url=server))
    got = model.score(*PAIRS)
    assert np.abs(got - plain).max() < 1e-3


def test_vllm_offline_agrees_with_transformers(judge, plain):
    from judgemine.transforms.judge.backends.vllm import VLLMJudge, VLLMOptions
    model = VLLMJudge(JudgeModel(judge), VLLMOptions())  # the defaults, as a user gets them
    got = model.score(*PAIRS)
    assert np.abs(got - plain).max() < 1e-3
    del model
    gc.collect()  # the in-process engine holds the weights until collected: the next judge's tests need the memory


def test_mpnet_embeds_as_sentence_transformers_does():
    from sentence_transformers import SentenceTransformer

    from judgemine.transforms.embed.backends import load_embedder
    from judgemine.transforms.embed.base import EmbedderSpec
    texts = sorted({s.text for pair in PAIRS for s in pair})
    ours = load_embedder(EmbedderSpec("sentence-transformers", EMBEDDER, device="cpu")).embed(texts, [""] * len(texts))
    theirs = SentenceTransformer(EMBEDDER, device="cpu").encode(texts, normalize_embeddings=True)
    assert ours.shape == (len(texts), 768) and np.abs(ours - theirs).max() < 1e-5
