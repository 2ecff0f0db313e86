"""The embedding ModelHandler for RunInference: one element is one chunk, embedded in one call of the embedder
named in the spec (embed/backends/); RunInference batches one element at a time."""
from __future__ import annotations

from typing import Any, Iterable, Optional, Sequence

from apache_beam.ml.inference.base import ModelHandler

from judgemine.transforms.embed.backends import load_embedder
from judgemine.transforms.embed.base import Embedder, EmbedderSpec, EmbeddingBatch, RecordBatch


class EmbedHandler(ModelHandler[RecordBatch, EmbeddingBatch, Embedder]):
    def __init__(self, spec: EmbedderSpec) -> None:
        super().__init__(min_batch_size=1, max_batch_size=1)
        self._spec = spec

    def load_model(self) -> Embedder:
        return load_embedder(self._spec)

    def run_inference(self, batch: Sequence[RecordBatch], model: Embedder,
                      inference_args: Optional[dict[str, Any]] = None) -> Iterable[EmbeddingBatch]:
        for item in batch:
            yield EmbeddingBatch(item.chunk, item.ids, model.embed(item.texts, item.images))

    def get_num_bytes(self, batch: Sequence[RecordBatch]) -> int:
        return sum(len(t) for item in batch for t in item.texts)

    def get_metrics_namespace(self) -> str:
        return "judgemine.embed"
