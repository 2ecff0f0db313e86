"""The judge score equals a hand computation from the model's logits for the same prompt."""
from __future__ import annotations

import math

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from judgemine.transforms.common.progress import StageWork
from judgemine.transforms.common.sides import Side
from judgemine.transforms.judge.backends.transformers import TransformersJudge, TransformersOptions
from judgemine.transforms.judge.base import JudgeModel
from judgemine.transforms.judge.prompt import INSTRUCTION, user_parts, user_text

PAIRS = [(Side("What is the capital of France?"), Side("The capital of France is Paris.")),
         (Side("Define the word: big"), Side("Of considerable size or extent.")),
         (Side("Define the word: big"), Side("Extremely large in size or amount, much bigger than usual.")),
         (Side("<|image_1|>\nWhat is shown?", "img/q.jpg"), Side("A cat on a mat.", "img/c.jpg"))]


def test_prompt_order_follows_the_spec():
    parts = user_parts(*PAIRS[3])
    assert [p["type"] for p in parts] == ["text", "image", "text", "image", "text"]
    assert parts[0]["text"] == INSTRUCTION + "\nQuery:" and parts[1]["image"] == "img/q.jpg"
    assert parts[2]["text"] == "What is shown?\nCandidate:" and parts[4]["text"] == "A cat on a mat."
    assert user_text(*PAIRS[0]) == (INSTRUCTION + "\nQuery: What is the capital of France?\nCandidate: "
                                    "The capital of France is Paris.")


def test_score_is_p_yes_from_unpadded_logits(tiny_judge):
    judge = TransformersJudge(JudgeModel(tiny_judge, batch_size=3, device="cpu"))
    scores = judge.score([q for q, _ in PAIRS], [c for _, c in PAIRS])

    tok = AutoTokenizer.from_pretrained(tiny_judge)
    model = AutoModelForCausalLM.from_pretrained(tiny_judge, dtype=torch.float32).eval()
    yes, no = tok.encode("Yes", add_special_tokens=False)[0], tok.encode("No", add_special_tokens=False)[0]
    for (q, c), got in zip(PAIRS, scores):
        prompt = tok.apply_chat_template([{"role": "user", "content": user_text(q, c)}], tokenize=False,
                                         add_generation_prompt=True)
        assert prompt.endswith("<|im_start|>assistant\n")
        ids = tok(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, -1].double()
        y, n = logits[yes].item(), logits[no].item()
        assert abs(got - math.exp(y) / (math.exp(y) + math.exp(n))) < 1e-5
    assert len({round(float(s), 4) for s in scores}) > 1  # the scores depend on the pair


def test_batch_size_does_not_change_scores(tiny_judge):
    qs, cs = [q for q, _ in PAIRS] * 3, [c for _, c in PAIRS] * 3
    unpacked = TransformersOptions("none")  # the padded-batch path: what its batch size governs
    a = TransformersJudge(JudgeModel(tiny_judge, batch_size=1, device="cpu"), unpacked).score(qs, cs)
    b = TransformersJudge(JudgeModel(tiny_judge, batch_size=5, device="cpu"), unpacked).score(qs, cs)
    assert abs(a - b).max() < 1e-5


def test_a_text_judge_reads_image_records_by_their_text_and_refuses_image_only_ones(tiny_judge):
    import pytest
    judge = TransformersJudge(JudgeModel(tiny_judge, batch_size=2, device="cpu"))
    with_image = judge.score([Side("<|image_1|>\nWhat is shown?", "img/q.jpg")], [Side("A cat on a mat.")])
    text = judge.score([Side("What is shown?")], [Side("A cat on a mat.")])
    assert abs(with_image[0] - text[0]) < 1e-6
    with pytest.raises(ValueError, match="sees text only"):
        judge.score([Side("Find a cat.")], [Side("", "img/cat.jpg")])


def test_a_vllm_engine_is_shared_by_the_processes_of_a_worker(tiny_judge):
    """Beam's large_model sharing for the engine that claims the accelerator; per-process copies otherwise.
    The vLLM stage tests run through the shared copy's proxy."""
    from judgemine.transforms.judge.backends import JUDGES
    from judgemine.transforms.judge.base import JudgeSpec
    from judgemine.transforms.judge.handler import JudgeHandler
    shared = {b: JudgeHandler(JudgeSpec(JUDGES.get(b), JudgeModel(tiny_judge)), "", 60.0, StageWork())
              .share_model_across_processes()
              for b in ("vllm", "transformers", "openai")}
    assert shared == {"vllm": True, "transformers": False, "openai": False}
