"""Coarse units of work: a stage's elements are chunk descriptors, never bulk rows (see ENVIRONMENT.md)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Chunk:
    """One part file of a stage's input: `side` is "queries" or "candidates", `index` its part number."""
    side: str
    index: int
    path: str


@dataclass
class RecordBatch:
    """The records of one chunk, ready for an embedder: texts (with their prompt) and image paths ("" if none)."""
    chunk: Chunk
    ids: list[str]
    texts: list[str]
    images: list[str]


@dataclass
class EmbeddingBatch:
    """L2-normalised vectors of one chunk, row i for ids[i]."""
    chunk: Chunk
    ids: list[str]
    vectors: np.ndarray = field(repr=False)


def chunks_of(side: str, paths: list[str]) -> list[Chunk]:
    """Descriptors for part files named part-NNNNN.parquet, numbered by their file name."""
    return [Chunk(side, int(os.path.basename(p)[5:10]), p) for p in paths]


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Unit rows in float32 so that inner product is cosine; the one place every embedder normalises."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
