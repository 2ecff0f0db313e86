"""The `clip` embedder: CLIP-style dual encoders (CLIP, SigLIP) through transformers."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from judgemine.transforms.common.devices import DTYPES, resolve_device
from judgemine.transforms.common.images import image_fit
from judgemine.transforms.common.images import load as load_image
from judgemine.transforms.common.text import strip_image_tokens
from judgemine.transforms.embed.base import Capabilities, Embedder, EmbedderSpec, l2_normalise, sorted_batches


class CLIPEmbedder(Embedder):
    """CLIP-style dual encoders (CLIP, SigLIP) through transformers. Text through the text tower, images
    through the vision tower; a record with both is the normalised sum of its two unit vectors (the joint
    space has no fused input). SigLIP's text is padded to its fixed length, as its model card says it was
    trained; CLIP's to the batch's longest."""
    name = "clip"
    capabilities = Capabilities(images=True, models=("dual-encoder",))

    def __init__(self, spec: EmbedderSpec) -> None:
        from transformers import AutoImageProcessor, AutoModel, AutoTokenizer
        self.device = resolve_device(spec.device)
        self.tokenizer = AutoTokenizer.from_pretrained(spec.model_path, local_files_only=True)
        self.tokenizer.padding_side = "right"  # as both were trained; SigLIP pools the last position
        self.image_processor = AutoImageProcessor.from_pretrained(spec.model_path, local_files_only=True)
        self.model = AutoModel.from_pretrained(spec.model_path, dtype=DTYPES[spec.dtype],
                                               local_files_only=True).to(self.device).eval()
        if not hasattr(self.model, "get_image_features"):
            raise ValueError(f"{spec.model_path} is not a CLIP-style dual encoder ({type(self.model).__name__})")
        self.spec, self.fit = spec, image_fit(spec.model_path)  # huge pictures cost what the model uses
        self.max_len = self.model.config.text_config.max_position_embeddings
        self.padding = "max_length" if self.model.config.model_type == "siglip" else True

    @staticmethod
    def _tensor(out: Any) -> torch.Tensor:
        return out if isinstance(out, torch.Tensor) else out.pooler_output

    @torch.inference_mode()
    def embed(self, texts: Sequence[str], images: Sequence[str]) -> np.ndarray:
        dim = getattr(self.model.config, "projection_dim", None) or self.model.config.text_config.hidden_size
        clean = [strip_image_tokens(t) for t in texts]
        text_vecs = np.zeros((len(texts), dim), np.float32)
        image_vecs = np.zeros((len(texts), dim), np.float32)
        with_text = [i for i, t in enumerate(clean) if t]
        for idx in sorted_batches(with_text, lambda i: len(clean[i]), self.spec.batch_size):
            batch = self.tokenizer([clean[i] for i in idx], padding=self.padding, truncation=True,
                                   max_length=self.max_len, return_tensors="pt").to(self.device)
            out = self.model.get_text_features(**{k: v for k, v in batch.items()
                                                  if k in ("input_ids", "attention_mask")})
            text_vecs[idx] = l2_normalise(self._tensor(out).float().cpu().numpy())
        with_image = [i for i, p in enumerate(images) if p]
        for idx in sorted_batches(with_image, lambda i: i, self.spec.batch_size):  # one resolution: no padding
            pictures = [load_image(images[i], self.spec.image_root, self.spec.image_limits[0], self.fit,
                                  self.spec.image_limits[1]) for i in idx]
            pixels = self.image_processor(images=pictures, return_tensors="pt")["pixel_values"].to(self.device,
                                                                                              self.model.dtype)
            image_vecs[idx] = l2_normalise(self._tensor(self.model.get_image_features(pixel_values=pixels))
                                           .float().cpu().numpy())
        return l2_normalise(text_vecs + image_vecs)
