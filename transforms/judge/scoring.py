"""The score itself, one place for every backend: the answer tokens, P(Yes) from the Yes/No logits, and the
check that a forced answer came back with its log-probability."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch


class JudgeAnswerError(RuntimeError):
    """The judge did not return what an exact score needs."""


def answer_token_ids(tokenizer: Any) -> tuple[int, int]:
    """The first tokens of "Yes" and "No" as the model would write them as its answer."""
    ids = []
    for word in ("Yes", "No"):
        encoded = tokenizer.encode(word, add_special_tokens=False)
        if not encoded:
            raise ValueError(f"the judge tokenizer encodes {word!r} to no token")
        ids.append(encoded[0])
    return ids[0], ids[1]


def p_yes(yes: Any, no: Any) -> np.ndarray:
    """s = exp(y) / (exp(y) + exp(n)) = sigmoid(y - n), in fp32 (docs/SPEC.md section 4). `yes`/`no` are logits
    or log-probabilities of the two answer tokens: log-probabilities share the softmax normaliser, which cancels."""
    yes_t = torch.as_tensor(np.asarray(yes, np.float32))
    no_t = torch.as_tensor(np.asarray(no, np.float32))
    return torch.sigmoid(yes_t - no_t).numpy()


def forced_logprob(returned: int | None, logprob: float | None, token: int, judge: str,
                   error: type[Exception] = JudgeAnswerError) -> float:
    """The log-probability of a forced answer token, or a clear error when another token (or none) came back."""
    if returned != token or logprob is None:
        raise error(f"{judge} answered token {returned} instead of the forced answer token {token} with its "
                    "log-probability: it must honour vLLM's `allowed_token_ids`")
    return float(logprob)
