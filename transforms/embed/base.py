"""What an embedder is: `embed(texts, images) -> unit vectors`, without Beam, so the same code runs in the
pipeline (embed/handler.py), in benchmarks and on a bare GPU machine; and the chunk-sized elements around it.

Each call gets a whole chunk and sorts its inputs (by text length, by image presence), so batches are padded
less (measured 18% faster than fixed batches of one order here)."""
from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from judgemine.transforms.common.chunks import Chunk
from judgemine.transforms.common.devices import Device, Dtype
from judgemine.transforms.common.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS
from judgemine.transforms.common.model_kinds import ModelKind
from judgemine.transforms.common.options import NoOptions


@dataclass(frozen=True)
class EmbedderSpec:
    """Everything a worker needs to build its embedder (picklable, unlike the embedder)."""
    backend: str
    model_path: str
    batch_size: int = 64
    device: Device = "auto"
    dtype: Dtype = "float32"
    image_root: str = ""
    options: Any = field(default_factory=NoOptions)  # the embedder's own (its `Options`, filled from the settings)
    image_limits: tuple[int, int] = (DEFAULT_MAX_PIXELS, DEFAULT_MAX_BYTES)  # the run's --max-image-pixels/-bytes


@dataclass(frozen=True)
class Capabilities:
    """images: embeds images (else a record is embedded by its text, and an image-only one cannot be). models: the
    kinds of model folder it takes (transforms/common/model_kinds.py; empty: any), checked before any stage."""
    images: bool
    models: tuple[ModelKind, ...] = ()


class Embedder(abc.ABC):
    """One embedder family: its name, capabilities and own settings (`Options`, declared with
    transforms/common/options.py and composed into the run's settings; `spec.options` holds their values)."""
    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    Options: ClassVar[type] = NoOptions

    @abc.abstractmethod
    def __init__(self, spec: EmbedderSpec) -> None: ...

    @abc.abstractmethod
    def embed(self, texts: Sequence[str], images: Sequence[str]) -> np.ndarray:
        """(n, d) float32 unit rows, row i for texts[i] / images[i] (an image path, "" if none)."""


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


def l2_normalise(vectors: Any) -> np.ndarray:
    """Unit rows in float32 so that inner product is cosine; the one place every embedder normalises."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def sorted_batches(items: Iterable[int], key: Callable[[int], Any], size: int) -> Iterable[list[int]]:
    """`items` sorted by `key` and cut into batches of `size`: similar inputs share a batch."""
    order = sorted(items, key=key)
    for start in range(0, len(order), size):
        yield order[start:start + size]
