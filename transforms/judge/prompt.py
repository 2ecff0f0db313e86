"""The judge's prompt: the SPEC prompt (docs/SPEC.md section 4; one user turn through the model's own chat
template) by default, or a raw template with its own answer words for Yes/No rerankers that document their
format (Qwen3-Reranker, Qwen3-VL-Reranker). Either way the query comes first, so a query's calls share a
prefix (packing, vLLM's prefix cache)."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Literal

from judgemine.transforms.common.sides import Side
from judgemine.transforms.common.text import strip_image_tokens

PROMPT_VERSION = "uv2-judge-v1"
INSTRUCTION = ("I will provide you with a query and a candidate. Please evaluate whether the candidate meets "
               "the requirements of the query. If it does, respond with 'Yes'; if it doesn't, respond with 'No'.")
PromptPreset = Literal["unime-v2", "qwen3-reranker", "qwen3-vl-reranker"]

_QWEN3_SYSTEM = ("<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the "
                 "Instruct provided. Note that the answer can only be \"yes\" or \"no\".<|im_end|>\n<|im_start|>user\n")


@dataclass(frozen=True)
class PromptFormat:
    """template: "" = the SPEC user turn through the model's chat template; otherwise the whole prompt text
    with {instruction}, {query} and {candidate} (each side's images first, as the model's image placeholder,
    then its text). answers: the words whose first tokens' logits give P(yes)."""
    template: str = ""
    answers: tuple[str, str] = ("Yes", "No")
    instruction: str = INSTRUCTION

    def __post_init__(self) -> None:
        if self.template:
            missing = [p for p in ("{query}", "{candidate}") if p not in self.template]
            if missing:
                raise ValueError(f"the judge prompt template lacks {', '.join(missing)}")
            if self.template.index("{query}") > self.template.index("{candidate}"):
                raise ValueError("the judge prompt template must put {query} before {candidate} (a query's pairs "
                                 "then share a prefix)")

    @property
    def identity(self) -> str:
        """In every score-cache key: the whole format as the judge renders it (the rendering code's version, the
        template, the instruction, the answer words), whatever the preset's name; the chat template itself is a
        file of the model folder, so the judge's identity holds it."""
        parts = [PROMPT_VERSION, self.template, *self.answers, self.instruction]
        return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:20]

    @property
    def version(self) -> str:
        """What the record and the manifest call the format: the SPEC prompt its historical name, any other its
        hash."""
        if self == PromptFormat():
            return PROMPT_VERSION
        digest = hashlib.sha256("\x00".join([self.template, *self.answers, self.instruction]).encode()).hexdigest()
        return f"raw-{digest[:16]}"


# Qwen3-Reranker's documented format (its model card): system line, <Instruct>/<Query>/<Document>, the
# empty think block, lowercase answers. Qwen3-VL-Reranker's, as vLLM serves it (its chat template for the
# model): no think block, no space after the Query and Document tags, images in place.
PRESETS: dict[str, PromptFormat] = {
    "unime-v2": PromptFormat(),
    "qwen3-reranker": PromptFormat(
        _QWEN3_SYSTEM + "<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {candidate}"
        "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n", ("yes", "no"),
        "Given a web search query, retrieve relevant passages that answer the query"),
    "qwen3-vl-reranker": PromptFormat(
        _QWEN3_SYSTEM + "<Instruct>: {instruction}<Query>:{query}\n<Document>:{candidate}<|im_end|>\n"
        "<|im_start|>assistant\n", ("yes", "no"),
        "Given a search query, retrieve relevant candidates that answer the query."),
}


def prompt_format(preset: str, template: str = "", instruction: str = "", answers: str = "") -> PromptFormat:
    """A preset with any of its parts replaced (answers as "yes,no")."""
    base = PRESETS[preset]
    words = tuple(w.strip() for w in answers.split(",")) if answers else base.answers
    if len(words) != 2 or not all(words):
        raise ValueError(f"judge answers {answers!r}: give the two words as YES,NO")
    return PromptFormat(template or base.template, (words[0], words[1]), instruction or base.instruction)


def user_parts(query: Side, candidate: Side, instruction: str = INSTRUCTION) -> list[dict[str, str]]:
    """The user turn as ordered parts: instruction, "Query:", image?, text, "Candidate:", image?, text."""
    parts: list[dict[str, str]] = [{"type": "text", "text": instruction + "\nQuery:"}]
    if query.image:
        parts.append({"type": "image", "image": query.image})
    parts.append({"type": "text", "text": strip_image_tokens(query.text) + "\nCandidate:"})
    if candidate.image:
        parts.append({"type": "image", "image": candidate.image})
    parts.append({"type": "text", "text": strip_image_tokens(candidate.text)})
    return parts


def user_text(query: Side, candidate: Side, instruction: str = INSTRUCTION) -> str:
    """The same turn for a text-only chat model: the text parts joined, images left out."""
    return " ".join(p["text"] for p in user_parts(query, candidate, instruction) if p["type"] == "text")


def image_paths(query: Side, candidate: Side) -> list[str]:
    """The pair's images in prompt order."""
    return [p for p in (query.image, candidate.image) if p]


def image_placeholder(tokenizer: Any) -> str:
    """What the model's own chat template writes for one image part (e.g. Qwen2-VL's
    <|vision_start|><|image_pad|><|vision_end|>), found by rendering an image part and a text part."""
    def render(part: dict[str, str]) -> str:
        return tokenizer.apply_chat_template([{"role": "user", "content": [part]}], tokenize=False)
    marker = "\x00"
    with_text, with_image = render({"type": "text", "text": marker}), render({"type": "image"})
    before, after = with_text.split(marker)
    if not (with_image.startswith(before) and with_image.endswith(after)):
        raise ValueError("cannot find the image placeholder in the judge model's chat template")
    return with_image[len(before):len(with_image) - len(after)]


def render_prompt(tokenizer: Any, fmt: PromptFormat, query: Side, candidate: Side, vision: bool) -> str:
    """The pair's whole prompt text. The SPEC format goes through the model's chat template (a text model
    gets one string, a vision model the ordered parts, the template writing each image's placeholder); a raw
    template is filled in directly, a vision model's images as its placeholder before each side's text."""
    if not fmt.template:
        if vision:
            content: Any = [{"type": "image"} if p["type"] == "image" else {"type": "text", "text": p["text"]}
                            for p in user_parts(query, candidate, fmt.instruction)]
        else:
            content = user_text(query, candidate, fmt.instruction)
        return tokenizer.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                             add_generation_prompt=True)
    placeholder = image_placeholder(tokenizer) if vision and (query.image or candidate.image) else ""

    def side(s: Side) -> str:
        return (placeholder if s.image and vision else "") + strip_image_tokens(s.text)
    values = {"instruction": fmt.instruction, "query": side(query), "candidate": side(candidate)}
    return re.sub(r"\{(instruction|query|candidate)\}", lambda m: values[m.group(1)], fmt.template)
