"""The judge's prompt (SPEC section 4): one user turn, query first so a query's calls share a prefix."""
from __future__ import annotations

from dataclasses import dataclass

from transforms.text import strip_image_tokens

PROMPT_VERSION = "uv2-judge-v1"
INSTRUCTION = ("I will provide you with a query and a candidate. Please evaluate whether the candidate meets "
               "the requirements of the query. If it does, respond with 'Yes'; if it doesn't, respond with 'No'.")


@dataclass(frozen=True)
class Side:
    """One side of a judged pair: text (image tokens kept verbatim) and an image path ("" if none)."""
    text: str
    image: str = ""


def user_parts(query: Side, candidate: Side) -> list[dict[str, str]]:
    """The user turn as ordered parts: instruction, "Query:", image?, text, "Candidate:", image?, text."""
    parts: list[dict[str, str]] = [{"type": "text", "text": INSTRUCTION + "\nQuery:"}]
    if query.image:
        parts.append({"type": "image", "image": query.image})
    parts.append({"type": "text", "text": strip_image_tokens(query.text) + "\nCandidate:"})
    if candidate.image:
        parts.append({"type": "image", "image": candidate.image})
    parts.append({"type": "text", "text": strip_image_tokens(candidate.text)})
    return parts


def user_text(query: Side, candidate: Side) -> str:
    """The same turn for a text-only chat model: the text parts joined, images left out."""
    return " ".join(p["text"] for p in user_parts(query, candidate) if p["type"] == "text")


def yes_no_score(yes_logit: float, no_logit: float) -> float:
    """P(Yes) = exp(y) / (exp(y) + exp(n)), computed stably as a logistic of the difference."""
    import math
    d = yes_logit - no_logit
    return 1.0 / (1.0 + math.exp(-d)) if d >= 0 else math.exp(d) / (1.0 + math.exp(d))
