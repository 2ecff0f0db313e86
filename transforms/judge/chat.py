"""Pairs rendered with a model folder's own tokenizer and chat template, so every backend feeds the model the
same tokens (and so gives the same score)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from judgemine.transforms.common.images import DEFAULT_CACHE_BYTES, NO_FIT, DecodedImages, ImageFit, image_fit
from judgemine.transforms.common.sides import Side
from judgemine.transforms.common.text import strip_image_tokens
from judgemine.transforms.common.vlm_inputs import is_vision_model
from judgemine.transforms.judge.prompt import PromptFormat, image_paths, render_prompt
from judgemine.transforms.judge.scoring import answer_token_ids


class ChatPrompter:
    """A vision model gets the image parts in place (decoded once each, in a bounded per-worker cache: a query's
    image serves its K+1 pairs); a text model judges an image+text side by its text and refuses an image-only
    side rather than scoring an empty one."""

    def __init__(self, tokenizer: Any, vision_model: bool, image_root: str = "",
                 prompt: PromptFormat = PromptFormat(), image_cache_bytes: int = DEFAULT_CACHE_BYTES,
                 fit: ImageFit = NO_FIT, image_limits: tuple[int, int] | None = None) -> None:
        self.tokenizer = tokenizer
        self.vision_model = vision_model
        self.prompt = prompt
        self.yes_id, self.no_id = answer_token_ids(tokenizer, prompt.answers)
        self.images = DecodedImages(image_root, image_cache_bytes, fit, *([image_limits] if image_limits else []))

    @classmethod
    def for_model(cls, model: Any) -> ChatPrompter:
        """From a JudgeModel's folder: its tokenizer, whether it sees images, what size of image it can use."""
        from transformers import AutoTokenizer
        return cls(AutoTokenizer.from_pretrained(model.path, local_files_only=True), is_vision_model(model.path),
                   model.image_root, model.prompt, model.image_cache_bytes, image_fit(model.path), model.image_limits)

    def check(self, queries: Sequence[Side], candidates: Sequence[Side], judge: str) -> None:
        if self.vision_model:
            return
        for side in (*queries, *candidates):
            if side.image and not strip_image_tokens(side.text):
                raise ValueError(f"the {judge} judge sees text only and a pair has an image-only side "
                                 f"({side.image}): judge image pairs with a vision-language model")

    def text(self, query: Side, candidate: Side) -> str:
        return render_prompt(self.tokenizer, self.prompt, query, candidate, self.vision_model)

    def token_ids(self, query: Side, candidate: Side) -> list[int]:
        """The prompt text is the only source of special tokens (as apply_chat_template tokenizes)."""
        return self.tokenizer(self.text(query, candidate), add_special_tokens=False)["input_ids"]

    def image_paths(self, query: Side, candidate: Side) -> list[str]:
        """The images the model is shown: none for a text model."""
        return image_paths(query, candidate) if self.vision_model else []
