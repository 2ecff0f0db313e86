"""The judge's prompt (docs/SPEC.md section 4): one user turn, query first so a query's calls share a prefix."""
from __future__ import annotations

from typing import Any

from judgemine.transforms.common.sides import Side
from judgemine.transforms.common.text import strip_image_tokens

PROMPT_VERSION = "uv2-judge-v1"
INSTRUCTION = ("I will provide you with a query and a candidate. Please evaluate whether the candidate meets "
               "the requirements of the query. If it does, respond with 'Yes'; if it doesn't, respond with 'No'.")


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


def image_paths(query: Side, candidate: Side) -> list[str]:
    """The pair's images in prompt order."""
    return [p for p in (query.image, candidate.image) if p]


def render_chat(tokenizer: Any, query: Side, candidate: Side, vision: bool) -> str:
    """The user turn through the model's own chat template: a text model gets one string, a vision model the
    ordered parts, an image part where each image goes (the template writes its placeholder)."""
    if vision:
        content: Any = [{"type": "image"} if p["type"] == "image" else {"type": "text", "text": p["text"]}
                        for p in user_parts(query, candidate)]
    else:
        content = user_text(query, candidate)
    return tokenizer.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                         add_generation_prompt=True)
