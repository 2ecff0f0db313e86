"""An embedder from outside judgemine: this module plus one entry point line,
`toy-hash = toy_embedder:HashEmbedder` in the group `judgemine.embedders` (tests/test_plugins.py)."""
from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from judgemine.transforms.common.options import above, setting
from judgemine.transforms.embed.base import Capabilities, Embedder, EmbedderSpec, l2_normalise


@dataclass(frozen=True)
class HashOptions:
    toy_hash_dim: int = setting(16, ("embed",), "dimension of the hashed trigram vectors", range=above(0))


class HashEmbedder(Embedder):
    """Character trigrams hashed into `toy_hash_dim` buckets: no model, deterministic."""
    name = "toy-hash"
    capabilities = Capabilities(images=False)
    Options = HashOptions

    def __init__(self, spec: EmbedderSpec) -> None:
        self.dim = spec.options.toy_hash_dim

    def embed(self, texts: Sequence[str], images: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        for row, text in enumerate(texts):
            for i in range(max(len(text) - 2, 1)):
                out[row, zlib.crc32(text[i:i + 3].encode()) % self.dim] += 1.0
        return l2_normalise(out + 1e-3)
