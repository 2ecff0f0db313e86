"""Batched inputs for Qwen2-VL-family models (Qwen2-VL, Qwen2.5-VL, VLM2Vec on Qwen2-VL) from a local folder.

Loaded as tokenizer + image processor + model rather than through the model's processor class: without
torchvision that class fails on its video processor (and AutoProcessor silently returns only the tokenizer).
The placeholder expansion below is what the processor does: each image's placeholder token becomes as many
tokens as the vision tower emits for it (grid t*h*w / merge_size^2).
"""
from __future__ import annotations

import inspect
from typing import Any, Sequence

import torch
from PIL import Image

from transforms.devices import resolve_device

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def is_vision_model(model_path: str) -> bool:
    from transformers import AutoConfig
    return hasattr(AutoConfig.from_pretrained(model_path, local_files_only=True), "vision_config")


class VLMInputs:
    def __init__(self, model_path: str, dtype: str, device: str) -> None:
        from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoTokenizer
        self.device = resolve_device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
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
        grids = vision.get("image_grid_thw")
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
