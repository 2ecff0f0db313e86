"""Text normalisation shared by hashing and model feeding (no Beam import: GPU scripts use it too)."""
from __future__ import annotations

import re

IMAGE_TOKEN = re.compile(r"<\|image_\d+\|>")


def normalise_text(text: str) -> str:
    """Whitespace-collapsed and case-folded: the official data held case-only duplicates side by side."""
    return " ".join(text.split()).casefold()


def strip_image_tokens(text: str) -> str:
    """Removes Phi-3V style `<|image_N|>` markers; used only where a model is fed, never in the output."""
    return " ".join(IMAGE_TOKEN.sub(" ", text).split())
