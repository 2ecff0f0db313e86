"""The `transformers` judge backend (the default): the model in this process, fp32 logits of each prompt's last
position. By default a query's pairs are packed behind one copy of their shared prefix (hf_packed.py); with
`--judge-packing none`, or for a model that cannot be packed, prompts are batched plain, left-padded. A folder
with a vision tower gets the vision-language implementation."""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from judgemine.transforms.common.devices import DTYPES, resolve_device
from judgemine.transforms.common.images import image_fit
from judgemine.transforms.common.options import at_least, setting
from judgemine.transforms.common.sides import Side
from judgemine.transforms.common.tokenizers import left_padded
from judgemine.transforms.common.vlm_inputs import is_vision_model
from judgemine.transforms.judge.backends.hf_packed import PackedScorer, TextRows, VisionRows, refusal
from judgemine.transforms.judge.base import Capabilities, JudgeBackend, JudgeModel
from judgemine.transforms.judge.chat import ChatPrompter
from judgemine.transforms.judge.scoring import context_length, p_yes, where_fits

log = logging.getLogger(__name__)
Packing = Literal["prefix", "none"]
TOKEN_COUNTERS = ("judge_tokens_computed", "judge_tokens_plain")
# Packed-row budgets when unset: on a CPU the fastest measured (bench/RESULTS.md); on a GPU a guess until measured,
# about twice the tokens per forward pass at which the unpacked path saturated an H200 (batch 128 x ~72 tokens).
ROW_TOKENS = {"cpu": 2048, "cuda": 16384}


@dataclass(frozen=True)
class TransformersOptions:
    judge_packing: Packing = setting("prefix", (), "prefix: each query's pairs packed behind one copy of their shared "
                                     "prompt prefix (exact, several times fewer tokens); none: every prompt whole, in "
                                     "padded batches")
    judge_pack_tokens: int = setting(0, (), "tokens per packed row (several queries share a row up to this); 0 = 2048 "
                                     "on a CPU (the fastest measured), 16384 on a GPU", range=at_least(0))


class TransformersJudge(JudgeBackend):
    """A chat LM loaded with transformers; scores pairs in fp32 from the answer position's logits."""
    name = "transformers"
    capabilities = Capabilities(images=True, reports=TOKEN_COUNTERS, models=("chat", "vision-language"))
    Options = TransformersOptions

    @classmethod
    def load(cls, model: JudgeModel, options: TransformersOptions = TransformersOptions()) -> JudgeBackend:
        return TransformersVLMJudge(model, options) if is_vision_model(model.path) else cls(model, options)

    def __init__(self, model: JudgeModel, options: TransformersOptions = TransformersOptions()) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer
        self.device = resolve_device(model.device)
        self.tokenizer = left_padded(AutoTokenizer.from_pretrained(model.path, local_files_only=True))
        self.prompter = ChatPrompter(self.tokenizer, vision_model=False, prompt=model.prompt)
        self.model = AutoModelForCausalLM.from_pretrained(model.path, dtype=DTYPES[model.dtype], local_files_only=True)
        self.model.to(self.device).eval()
        self.batch_size = model.batch_size
        self.packer = self._packer(options, refusal(self.model), self.device)
        self.rows = TextRows(self.model, self.tokenizer, self._answers(), self.device)
        self.max_len = context_length(self.model.config)

    def _answers(self) -> list[int]:
        return [self.prompter.yes_id, self.prompter.no_id]

    def _packer(self, options: TransformersOptions, refused: str, device: str) -> PackedScorer | None:
        """The packed scorer, or None (plain batches) when packing is off or this model is refused (logged once)."""
        if options.judge_packing == "none":
            return None
        if refused:
            log.warning("judge: packing refused for this model, scoring unpacked: %s", refused)
            return None
        return PackedScorer(options.judge_pack_tokens or ROW_TOKENS["cuda" if device.startswith("cuda") else "cpu"])

    def counters(self) -> dict[str, float]:
        """Tokens run through the model and what the same pairs cost unpacked; nothing when not packing."""
        if self.packer is None:
            return {}
        return {"judge_tokens_computed": self.packer.computed, "judge_tokens_plain": self.packer.plain}

    @torch.inference_mode()
    def yes_no_logits(self, encoded: Sequence[list[int]]) -> np.ndarray:
        """(n, 2) fp32 logits of the Yes and No tokens at the next position, in the order of `encoded`."""
        order = np.argsort([len(e) for e in encoded], kind="stable")
        out = np.zeros((len(encoded), 2), np.float32)
        answers = self._answers()
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            batch = self.tokenizer.pad({"input_ids": [encoded[i] for i in idx]}, return_tensors="pt")
            mask = batch["attention_mask"].to(self.device)
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            logits = self.model(input_ids=batch["input_ids"].to(self.device), attention_mask=mask,
                                position_ids=positions, logits_to_keep=1).logits[:, -1, :]
            out[idx] = logits[:, answers].float().cpu().numpy()
        return out

    def score(self, queries: Sequence[Side], candidates: Sequence[Side]) -> np.ndarray:
        if not queries:
            return np.zeros(0, np.float32)
        self.prompter.check(queries, candidates, "transformers text")
        encoded = [self.prompter.token_ids(q, c) for q, c in zip(queries, candidates)]

        def scored(idx: list[int]) -> np.ndarray:
            ids = [encoded[i] for i in idx]
            logits = (self.yes_no_logits(ids) if self.packer is None else
                      self.packer.score([queries[i] for i in idx], self.rows.pairs(ids), self.rows.forward))
            return p_yes(logits[:, 0], logits[:, 1])
        return where_fits([len(e) for e in encoded], self.max_len, scored)


class TransformersVLMJudge(TransformersJudge):
    """A chat VLM (Qwen2-VL family, or any with a processor class: Idefics3 / SmolVLM, LLaVA, ...): the judge's
    turn with the query and candidate images in place, batched with left padding, scored from the
    last-position Yes/No logits in fp32. Batches are bucketed by image count, image area and prompt length."""

    def __init__(self, model: JudgeModel, options: TransformersOptions = TransformersOptions()) -> None:
        from judgemine.transforms.common.vlm_inputs import VLMInputs, load_vlm_inputs
        self.vlm = load_vlm_inputs(model.path, model.dtype, model.device)
        self.tokenizer = self.vlm.tokenizer
        self.prompter = ChatPrompter(self.tokenizer, vision_model=True, image_root=model.image_root,
                                     prompt=model.prompt, image_cache_bytes=model.image_cache_bytes,
                                     fit=image_fit(model.path), image_limits=model.image_limits)
        self.batch_size = model.batch_size
        packable = isinstance(self.vlm, VLMInputs)  # the Qwen2-VL family: its positions and features are known
        self.packer = self._packer(options, refusal(self.vlm.model) if packable else
                                   "packing is implemented for Qwen2-VL-family judges only", self.vlm.device)
        self.vision_rows = VisionRows(self.vlm, self.prompter.images, self._answers()) if packable else None
        self.max_len = context_length(self.vlm.model.config)

    @torch.inference_mode()
    def score(self, queries: Sequence[Side], candidates: Sequence[Side]) -> np.ndarray:
        if not queries:
            return np.zeros(0, np.float32)
        prompts = [self.prompter.text(q, c) for q, c in zip(queries, candidates)]
        paths = [self.prompter.image_paths(q, c) for q, c in zip(queries, candidates)]
        packer, rows = self.packer, self.vision_rows
        if packer is not None and rows is not None:
            pairs = rows.pairs(prompts, paths)

            def packed(idx: list[int]) -> np.ndarray:
                own = [dataclasses.replace(pairs[i], pair=j) for j, i in enumerate(idx)]
                logits = packer.score([queries[i] for i in idx], own, rows.forward)
                return p_yes(logits[:, 0], logits[:, 1])
            return where_fits([len(p.tokens) for p in pairs], self.max_len, packed)
        return self._plain(prompts, paths)

    def _plain(self, prompts: list[str], paths: list[list[str]]) -> np.ndarray:
        images = self.prompter.images

        def area(i: int) -> int:  # image tokens grow with the picture's size: bucket by it
            return sum(images.get(p).width * images.get(p).height for p in paths[i])

        order = sorted(range(len(prompts)), key=lambda i: (len(paths[i]), area(i), len(prompts[i])))
        logits = np.zeros((len(prompts), 2), np.float32)
        too_long: list[int] = []
        for idx in _batches(order, [len(p) for p in paths], self.batch_size):
            batch = self.vlm.encode([prompts[i] for i in idx], [[images.get(p) for p in paths[i]] for i in idx])
            lengths = batch["attention_mask"].sum(-1).tolist()
            if max(lengths) <= self.max_len:
                logits[idx] = self._answer_logits(batch)
                continue
            for i, n in zip(idx, lengths):  # refuse the prompts too long for the context, score the others alone
                if n > self.max_len:
                    too_long.append(i)
                else:
                    logits[i] = self._answer_logits(self.vlm.encode([prompts[i]], [[images.get(p) for p in paths[i]]]))
        scores = p_yes(logits[:, 0], logits[:, 1])
        scores[too_long] = np.nan
        return scores

    def _answer_logits(self, batch: Any) -> np.ndarray:
        out = self.vlm.model(**batch, logits_to_keep=1).logits[:, -1, :]
        return out[:, self._answers()].float().cpu().numpy()


def _batches(order: list[int], group: list[int], size: int) -> list[list[int]]:
    """`order` cut into runs of at most `size` that never mix two values of `group`."""
    batches: list[list[int]] = []
    for i in order:
        if not batches or len(batches[-1]) == size or group[batches[-1][0]] != group[i]:
            batches.append([])
        batches[-1].append(i)
    return batches
