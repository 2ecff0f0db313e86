"""The `vlm2vec` embedder: VLM2Vec on a Qwen2-VL-family backbone (the paper's retriever)."""
from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import torch

from judgemine.transforms.common.images import image_fit
from judgemine.transforms.common.images import load as load_image
from judgemine.transforms.common.text import IMAGE_TOKEN, strip_image_tokens
from judgemine.transforms.embed.base import Capabilities, Embedder, EmbedderSpec, l2_normalise, sorted_batches


class VLM2VecEmbedder(Embedder):
    """VLM2Vec on a Qwen2-VL-family backbone: the instruction-prefixed text with the image in place of its
    `<|image_N|>` marker (or in front, when the text has none), pooled at the last token."""
    name = "vlm2vec"
    capabilities = Capabilities(images=True, models=("vision-language",))

    def __init__(self, spec: EmbedderSpec) -> None:
        from judgemine.transforms.common.vlm_inputs import VLMInputs
        self.vlm = VLMInputs(spec.model_path, spec.dtype, spec.device)
        self.spec, self.fit = spec, image_fit(spec.model_path)  # huge pictures cost what the model uses

    def backbone_text(self, text: str, image: str) -> str:
        if not image:
            return strip_image_tokens(text)
        if IMAGE_TOKEN.search(text):
            return re.sub(r"\s*" + IMAGE_TOKEN.pattern + r"\s*", self.vlm.placeholder, text, count=1).strip()
        return self.vlm.placeholder + text

    @torch.inference_mode()
    def embed(self, texts: Sequence[str], images: Sequence[str]) -> np.ndarray:
        inputs = [self.backbone_text(t, p) for t, p in zip(texts, images)]
        out = np.zeros((len(texts), self.vlm.model.config.text_config.hidden_size), np.float32)
        def key(i: int) -> tuple[bool, int]:
            return bool(images[i]), len(inputs[i])

        for idx in sorted_batches(range(len(inputs)), key, self.spec.batch_size):
            pictures = [[load_image(images[i], self.spec.image_root, self.spec.image_limits[0], self.fit,
                                    self.spec.image_limits[1])] if images[i] else [] for i in idx]
            batch = self.vlm.encode([inputs[i] for i in idx], pictures)
            hidden = self.vlm.model.model(**batch).last_hidden_state[:, -1, :]  # left padding: last = final token
            out[idx] = hidden.float().cpu().numpy()
        return l2_normalise(out)
