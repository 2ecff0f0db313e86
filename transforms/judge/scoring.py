"""The score itself, one place for every backend: the answer tokens, P(Yes) from the Yes/No logits, the
check that a forced answer came back with its log-probability, and the refusal of prompts longer than the
judge's context: such a pair is scored NaN (never a crash, never a truncated prompt judged as if whole); the
judge stage counts them and the mine stage drops those candidates and rejects queries whose positive it is."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch


class JudgeAnswerError(RuntimeError):
    """The judge did not return what an exact score needs."""


def answer_token_ids(tokenizer: Any, answers: tuple[str, str] = ("Yes", "No")) -> tuple[int, int]:
    """The first tokens of the yes and no words as the model would write them as its answer."""
    ids = []
    for word in answers:
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


def context_length(config: Any) -> int:
    """The longest sequence a model's positions allow (a VLM's language model's)."""
    return int((getattr(config, "text_config", None) or config).max_position_embeddings)


def where_fits(lengths: Sequence[int], limit: int, score: Callable[[list[int]], np.ndarray]) -> np.ndarray:
    """`score(indices)` for the pairs whose prompt fits in `limit` tokens, NaN for the others."""
    fits = [i for i, n in enumerate(lengths) if n <= limit]
    out = np.full(len(lengths), np.nan, np.float32)
    if fits:
        out[fits] = score(fits)
    return out
