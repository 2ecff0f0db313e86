"""One side of a judged pair or a mined row: a query, a positive or a candidate."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Side:
    """Text (image tokens kept verbatim) and an image path ("" if none)."""
    text: str
    image: str = ""
