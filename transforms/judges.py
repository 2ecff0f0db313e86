"""Judge model handlers for RunInference: (query, candidate) pairs to P(Yes) from the Yes/No logits.

One element is one chunk's pairs; the handler micro-batches them itself (sorted by prompt length so padding
is small) and returns scores in the element's order.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Sequence

import numpy as np
import torch
from apache_beam.ml.inference.base import ModelHandler

from transforms.embedders import resolve_device
from transforms.judge_prompt import Side, user_text

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class JudgeRequest:
    """The pairs of one chunk, a query's pairs contiguous (its positive first). `scores` holds what is
    already known (NaN elsewhere); the model is asked only for the pairs at `todo`, whose sides and cache
    keys are `queries`, `candidates` and `keys`."""
    chunk_index: int
    query_ids: list[str] = field(default_factory=list)
    candidate_ids: list[str] = field(default_factory=list)
    is_positive: list[bool] = field(default_factory=list)
    known: list[float] = field(default_factory=list, repr=False)
    todo: list[int] = field(default_factory=list, repr=False)
    keys: list[str] = field(default_factory=list, repr=False)
    queries: list[Side] = field(default_factory=list, repr=False)
    candidates: list[Side] = field(default_factory=list, repr=False)


@dataclass
class JudgeResult:
    """Scores of the request's `todo` pairs, in that order."""
    request: JudgeRequest = field(repr=False)
    scores: np.ndarray = field(repr=False)


def answer_token_id(tokenizer: Any, word: str) -> int:
    """The first token of `word` as the model would write it as its answer."""
    ids = tokenizer.encode(word, add_special_tokens=False)
    if not ids:
        raise ValueError(f"the judge tokenizer encodes {word!r} to no token")
    return ids[0]


class TransformersJudge:
    """A chat LM loaded with transformers; scores pairs in fp32 from the last-position logits."""

    def __init__(self, model_path: str, batch_size: int, dtype: str, device: str) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer
        self.device = resolve_device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=DTYPES[dtype], local_files_only=True)
        self.model.to(self.device).eval()
        self.batch_size = batch_size
        self.yes_id = answer_token_id(self.tokenizer, "Yes")
        self.no_id = answer_token_id(self.tokenizer, "No")

    def prompt(self, query: Side, candidate: Side) -> str:
        messages = [{"role": "user", "content": user_text(query, candidate)}]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    @torch.inference_mode()
    def yes_no_logits(self, prompts: Sequence[str]) -> np.ndarray:
        """(n, 2) fp32 logits of the Yes and No tokens at the next position, in the order of `prompts`."""
        encoded = [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        order = np.argsort([len(e) for e in encoded], kind="stable")
        out = np.zeros((len(prompts), 2), np.float32)
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            batch = self.tokenizer.pad({"input_ids": [encoded[i] for i in idx]}, return_tensors="pt")
            mask = batch["attention_mask"].to(self.device)
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            logits = self.model(input_ids=batch["input_ids"].to(self.device), attention_mask=mask,
                                position_ids=positions, logits_to_keep=1).logits[:, -1, :]
            out[idx] = logits[:, [self.yes_id, self.no_id]].float().cpu().numpy()
        return out

    def score(self, queries: Sequence[Side], candidates: Sequence[Side]) -> np.ndarray:
        if not queries:
            return np.zeros(0, np.float32)
        logits = torch.from_numpy(self.yes_no_logits([self.prompt(q, c) for q, c in zip(queries, candidates)]))
        return torch.sigmoid(logits[:, 0] - logits[:, 1]).numpy()  # = exp(y) / (exp(y) + exp(n)), fp32


class TransformersJudgeHandler(ModelHandler[JudgeRequest, JudgeResult, TransformersJudge]):
    def __init__(self, model_path: str, batch_size: int = 16, dtype: str = "float32", device: str = "auto") -> None:
        super().__init__(min_batch_size=1, max_batch_size=1)
        self._args = (model_path, batch_size, dtype, device)

    def load_model(self) -> TransformersJudge:
        return TransformersJudge(*self._args)

    def run_inference(self, batch: Sequence[JudgeRequest], model: TransformersJudge,
                      inference_args: Optional[dict[str, Any]] = None) -> Iterable[JudgeResult]:
        for request in batch:
            yield JudgeResult(request, model.score(request.queries, request.candidates))

    def get_num_bytes(self, batch: Sequence[JudgeRequest]) -> int:
        return sum(len(q.text) + len(c.text) for r in batch for q, c in zip(r.queries, r.candidates))

    def get_metrics_namespace(self) -> str:
        return "judgemine.judge"
