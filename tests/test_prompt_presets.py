"""Yes/No rerankers with their own documented prompt: Qwen3-Reranker's format token for token (built the
way its model card builds it), Qwen3-VL-Reranker's with images in place, custom templates and answer words
as settings, and the score cache keyed by the format."""
from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from judgemine.pipelines.settings import Settings
from judgemine.transforms.common.sides import Side
from judgemine.transforms.judge.backends.transformers import TransformersJudge, TransformersOptions
from judgemine.transforms.judge.base import JudgeModel
from judgemine.transforms.judge.chat import ChatPrompter
from judgemine.transforms.judge.prompt import PRESETS, PROMPT_VERSION, PromptFormat, prompt_format

# Qwen3-Reranker's model card, as its users run it.
CARD_PREFIX = ("<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the "
               "Instruct provided. Note that the answer can only be \"yes\" or \"no\".<|im_end|>\n<|im_start|>user\n")
CARD_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
CARD_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"


def card_input_ids(tokenizer, query: str, doc: str) -> list[int]:
    body = f"<Instruct>: {CARD_INSTRUCTION}\n<Query>: {query}\n<Document>: {doc}"
    prefix = tokenizer.encode(CARD_PREFIX, add_special_tokens=False)
    suffix = tokenizer.encode(CARD_SUFFIX, add_special_tokens=False)
    return prefix + tokenizer([body], padding=False, truncation=False)["input_ids"][0] + suffix


PAIRS = [(Side("what is the capital of china?"), Side("The capital of China is Beijing.")),
         (Side("explain gravity"), Side("Gravity is a force that attracts two bodies towards each other.")),
         (Side("explain gravity"), Side("yes or no: {query} is not a placeholder here"))]


@pytest.fixture(scope="module")
def reranker(tmp_path_factory) -> str:
    """A tiny Qwen-style causal LM whose tokenizer knows the reranker's words (yes/no single tokens)."""
    from judgemine.testing.tiny_models import build_tiny_judge
    texts = ["yes", "no", "<think>", "</think>", CARD_INSTRUCTION, "Instruct", "Query", "Document"] * 30
    texts += [s.text for pair in PAIRS for s in pair]
    return build_tiny_judge(str(tmp_path_factory.mktemp("models") / "reranker"), texts, seed=3)


def test_qwen3_reranker_prompt_is_the_model_cards_token_for_token(reranker):
    tok = AutoTokenizer.from_pretrained(reranker)
    prompter = ChatPrompter(tok, vision_model=False, prompt=PRESETS["qwen3-reranker"])
    assert (prompter.yes_id, prompter.no_id) == (tok.convert_tokens_to_ids("yes"), tok.convert_tokens_to_ids("no"))
    for q, c in PAIRS:
        assert prompter.token_ids(q, c) == card_input_ids(tok, q.text, c.text)
    assert prompter.text(*PAIRS[0]).startswith(CARD_PREFIX + "<Instruct>: " + CARD_INSTRUCTION + "\n<Query>: what")


@pytest.mark.parametrize("packing", ["prefix", "none"])
def test_qwen3_reranker_score_is_the_model_cards(reranker, packing):
    """The card's score: log_softmax over [no, yes] at the last position, exp of yes."""
    judge = TransformersJudge(JudgeModel(reranker, device="cpu", prompt=PRESETS["qwen3-reranker"]),
                              TransformersOptions(packing))
    got = judge.score([q for q, _ in PAIRS], [c for _, c in PAIRS])
    tok = AutoTokenizer.from_pretrained(reranker)
    model = AutoModelForCausalLM.from_pretrained(reranker, dtype=torch.float32).eval()
    yes, no = tok.convert_tokens_to_ids("yes"), tok.convert_tokens_to_ids("no")
    for (q, c), score in zip(PAIRS, got):
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([card_input_ids(tok, q.text, c.text)])).logits[0, -1]
        want = math.exp(torch.log_softmax(torch.stack([logits[no], logits[yes]]).double(), 0)[1].item())
        assert abs(score - want) < 1e-5


def test_qwen3_vl_reranker_puts_each_image_placeholder_before_its_text(tiny_vlm):
    tok = AutoTokenizer.from_pretrained(tiny_vlm)
    prompter = ChatPrompter(tok, vision_model=True, prompt=PRESETS["qwen3-vl-reranker"])
    text = prompter.text(Side("a red car", "q.jpg"), Side("", "c.jpg"))
    image = "<|vision_start|><|image_pad|><|vision_end|>"
    assert text == (CARD_PREFIX + "<Instruct>: Given a search query, retrieve relevant candidates that answer the "
                    f"query.<Query>:{image}a red car\n<Document>:{image}<|im_end|>\n<|im_start|>assistant\n")
    assert prompter.image_paths(Side("a red car", "q.jpg"), Side("", "c.jpg")) == ["q.jpg", "c.jpg"]


def test_the_vl_preset_scores_image_pairs_packed_as_unpacked(tiny_vlm, image_root):
    import glob
    import os
    photos = [p for p in sorted(glob.glob(os.path.join(image_root, "**", "*.jpg"), recursive=True))
              if os.sep + "bad" + os.sep not in p][:3]
    queries = [Side("find this picture", photos[0])] * 3
    candidates = [Side("a photo", photos[1]), Side("", photos[2]), Side("just text")]
    model = JudgeModel(tiny_vlm, device="cpu", image_root=image_root, prompt=PRESETS["qwen3-vl-reranker"])
    packed = TransformersJudge.load(model, TransformersOptions("prefix")).score(queries, candidates)
    plain = TransformersJudge.load(model, TransformersOptions("none")).score(queries, candidates)
    assert abs(packed - plain).max() < 1e-5


def test_templates_and_answers_are_settings_checked_before_a_run():
    s = Settings(judge_prompt="qwen3-reranker", judge_instruction="Find the definition", judge_answers="Ja,Nein")
    assert s.prompt.answers == ("Ja", "Nein") and s.prompt.instruction == "Find the definition"
    assert s.prompt.template == PRESETS["qwen3-reranker"].template
    custom = Settings(judge_template="Q: {query}\nD: {candidate}\nRelevant?").prompt
    assert custom.answers == ("Yes", "No") and custom.version.startswith("raw-")
    with pytest.raises(ValueError, match="must put {query} before {candidate}"):
        Settings(judge_template="{candidate} {query}")
    with pytest.raises(ValueError, match="lacks {candidate}"):
        Settings(judge_template="{query} only")
    with pytest.raises(ValueError, match="YES,NO"):
        Settings(judge_answers="yes")


def test_the_cache_key_follows_the_format():
    """The paper's prompt keeps its historical version (old caches stay valid); any change of template,
    instruction or answers is a different version, so no score of another format is ever reused."""
    assert PromptFormat().version == PROMPT_VERSION == Settings().prompt.version
    versions = {PRESETS[p].version for p in PRESETS}
    versions.add(prompt_format("qwen3-reranker", instruction="other").version)
    versions.add(prompt_format("qwen3-reranker", answers="Yes,No").version)
    assert len(versions) == 5
