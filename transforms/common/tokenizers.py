"""Tokenizer set-up shared by every model that reads the last position of a batch."""
from __future__ import annotations

from typing import Any


def left_padded(tokenizer: Any) -> Any:
    """Pads on the left (pad = eos when the model has none), so the last position of every row of a batch is
    its prompt's last token: where the judge reads its answer and a last-token embedder pools."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
