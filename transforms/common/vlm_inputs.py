"""Batched model inputs for chat VLMs from a local folder: texts holding one image placeholder per image, and
the images.

Qwen2-VL family (Qwen2-VL, Qwen2.5-VL, VLM2Vec on Qwen2-VL): loaded as tokenizer + image processor + model
rather than through the model's processor class: without torchvision that class fails on its video processor
(and AutoProcessor silently returns only the tokenizer). The placeholder expansion in VLMInputs is what the
processor does: each image's placeholder token becomes as many tokens as the vision tower emits for it
(grid t*h*w / merge_size^2). Every other VLM (Idefics3 / SmolVLM, LLaVA, ...) goes through its own processor
class (ProcessorInputs), which expands the placeholders itself.
"""
from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from PIL import Image

from judgemine.transforms.common.devices import DTYPES, resolve_device
from judgemine.transforms.common.tokenizers import left_padded

QWEN_VL_TYPES = ("qwen2_vl", "qwen2_5_vl")


def _config(model_path: str) -> Any:
    from transformers import AutoConfig
    return AutoConfig.from_pretrained(model_path, local_files_only=True)


def is_vision_model(model_path: str) -> bool:
    """A folder whose config has a vision tower: a judge shows it the images."""
    return hasattr(_config(model_path), "vision_config")


def load_vlm_inputs(model_path: str, dtype: str, device: str) -> VLMInputs | ProcessorInputs:
    if _config(model_path).model_type in QWEN_VL_TYPES:
        return VLMInputs(model_path, dtype, device)
    return ProcessorInputs(model_path, dtype, device)


class VLMInputs:
    """A Qwen2-VL-family folder as tokenizer + image processor + model (see the module docstring)."""

    def __init__(self, model_path: str, dtype: str, device: str) -> None:
        from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoTokenizer
        self.device = resolve_device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
        left_padded(self.tokenizer)
        self.image_processor = AutoImageProcessor.from_pretrained(model_path, local_files_only=True)
        self.model = AutoModelForImageTextToText.from_pretrained(model_path, dtype=DTYPES[dtype],
                                                                 local_files_only=True).to(self.device).eval()
        config = self.model.config
        self.image_token_id = config.image_token_id
        self.image_token = self.tokenizer.convert_ids_to_tokens(self.image_token_id)
        start = self.tokenizer.convert_ids_to_tokens(config.vision_start_token_id)
        end = self.tokenizer.convert_ids_to_tokens(config.vision_end_token_id)
        self.placeholder = f"{start}{self.image_token}{end}"
        self.merge = getattr(self.image_processor, "merge_size", 2)
        self._wants_types = "mm_token_type_ids" in inspect.signature(self.model.forward).parameters

    def encode(self, texts: Sequence[str], images: Sequence[Sequence[Image.Image]]) -> dict[str, Any]:
        """`texts[i]` holds one placeholder token per image in `images[i]`, in order."""
        flat = [img for group in images for img in group]
        vision: dict[str, Any] = {}
        if flat:
            vision = dict(self.image_processor(images=flat, return_tensors="pt"))
        grids: Any = vision.get("image_grid_thw")  # read only where a placeholder has an image
        expanded, k = [], 0
        for text, group in zip(texts, images):
            pieces = text.split(self.image_token)
            if len(pieces) - 1 != len(group):
                raise ValueError(f"{len(pieces) - 1} image placeholders for {len(group)} images")
            out = pieces[0]
            for piece in pieces[1:]:
                out += self.image_token * (int(grids[k].prod()) // self.merge ** 2) + piece
                k += 1
            expanded.append(out)
        batch = dict(self.tokenizer(expanded, padding=True, return_tensors="pt", add_special_tokens=False))
        if self._wants_types:
            batch["mm_token_type_ids"] = (batch["input_ids"] == self.image_token_id).long()
        if flat:
            batch["pixel_values"] = vision["pixel_values"].to(self.model.dtype)
            batch["image_grid_thw"] = grids
        return {k: v.to(self.device) for k, v in batch.items()}


class ProcessorInputs:
    """A chat VLM through its own processor class. Positions are counted from the attention mask, so a
    left-padded prompt sees the positions it would see alone; the chat template is the only source of special
    tokens (add_special_tokens=False, as transformers' apply_chat_template tokenizes)."""

    def __init__(self, model_path: str, dtype: str, device: str) -> None:
        from transformers import AutoModelForImageTextToText, AutoProcessor
        self.device = resolve_device(device)
        self.processor = AutoProcessor.from_pretrained(model_path, local_files_only=True)
        if not hasattr(self.processor, "image_processor"):
            raise ValueError(f"{model_path}: its processor class did not load (it may need torchvision here); "
                             "a VLM judge needs the model's processor with its image processor")
        self.tokenizer = self.processor.tokenizer
        left_padded(self.tokenizer)
        self.model = AutoModelForImageTextToText.from_pretrained(model_path, dtype=DTYPES[dtype],
                                                                 local_files_only=True).to(self.device).eval()
        self._wants_positions = "position_ids" in inspect.signature(self.model.forward).parameters

    def encode(self, texts: Sequence[str], images: Sequence[Sequence[Image.Image]]) -> dict[str, Any]:
        """`texts[i]` holds one placeholder per image in `images[i]`; a batch has the same number of images in
        every text (processors refuse a batch that mixes texts with and without images)."""
        kwargs: dict[str, Any] = {"text": list(texts), "padding": True, "return_tensors": "pt",
                                  "add_special_tokens": False}
        if any(images):
            kwargs["images"] = [list(group) for group in images]
        batch = dict(self.processor(**kwargs))
        if self._wants_positions:
            batch["position_ids"] = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
        if "pixel_values" in batch:
            batch["pixel_values"] = batch["pixel_values"].to(self.model.dtype)
        return {k: v.to(self.device) for k, v in batch.items()}
