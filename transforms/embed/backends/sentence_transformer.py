"""The `sentence-transformers` embedder (the default, with the bundled all-MiniLM-L6-v2): text only."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from judgemine.transforms.common.devices import DTYPES, resolve_device
from judgemine.transforms.embed.base import Capabilities, Embedder, EmbedderSpec, l2_normalise


class SentenceTransformerEmbedder(Embedder):
    """One `encode` call per chunk: sentence-transformers sorts it by length itself."""
    name = "sentence-transformers"
    capabilities = Capabilities(images=False)

    def __init__(self, spec: EmbedderSpec) -> None:
        from sentence_transformers import SentenceTransformer
        self.model = SentenceTransformer(spec.model_path, device=resolve_device(spec.device), local_files_only=True,
                                         model_kwargs={"dtype": DTYPES[spec.dtype]})
        self.batch_size = spec.batch_size
        self.dim = self.model.get_embedding_dimension()

    def embed(self, texts: Sequence[str], images: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return l2_normalise(self.model.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True,
                                              show_progress_bar=False))
