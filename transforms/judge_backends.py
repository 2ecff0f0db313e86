"""Judge backends: (query, candidate) pairs to P(Yes) from the Yes/No logits, without Beam, so the same
code runs in the pipeline, in benchmarks and on a bare GPU machine.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from transforms.devices import resolve_device
from transforms.judge_prompt import Side, user_text

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


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
