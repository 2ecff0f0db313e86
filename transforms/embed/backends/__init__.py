"""Every embedder, by name: one module each; adding one = its module + one entry in EMBEDDERS (or, from another
distribution, one `judgemine.embedders` entry point: transforms/common/registry.py)."""
from __future__ import annotations

from judgemine.transforms.common.registry import Registry
from judgemine.transforms.embed.backends.clip import CLIPEmbedder
from judgemine.transforms.embed.backends.sentence_transformers import SentenceTransformerEmbedder
from judgemine.transforms.embed.backends.vlm2vec import VLM2VecEmbedder
from judgemine.transforms.embed.base import Embedder, EmbedderSpec

EMBEDDERS: Registry[Embedder] = Registry("embed backend", "embed_backend", "embed", "judgemine.embedders",
                                         (SentenceTransformerEmbedder, CLIPEmbedder, VLM2VecEmbedder))


def load_embedder(spec: EmbedderSpec) -> Embedder:
    return EMBEDDERS.get(spec.backend)(spec)
