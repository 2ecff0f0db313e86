"""The embedding ModelHandler for RunInference: one element is one chunk, embedded in one call of an
embedder from transforms/embedder_backends.py (RunInference batches one element at a time)."""
from __future__ import annotations

from typing import Any, Iterable, Optional, Sequence

from apache_beam.ml.inference.base import ModelHandler

from transforms.chunks import EmbeddingBatch, RecordBatch
from transforms.embedder_backends import EmbedderSpec, load_embedder


class EmbedHandler(ModelHandler[RecordBatch, EmbeddingBatch, Any]):
    def __init__(self, spec: EmbedderSpec) -> None:
        super().__init__(min_batch_size=1, max_batch_size=1)
        self._spec = spec

    def load_model(self) -> Any:
        return load_embedder(self._spec)

    def run_inference(self, batch: Sequence[RecordBatch], model: Any,
                      inference_args: Optional[dict[str, Any]] = None) -> Iterable[EmbeddingBatch]:
        for item in batch:
            yield EmbeddingBatch(item.chunk, item.ids, model.embed(item.texts, item.images))

    def get_num_bytes(self, batch: Sequence[RecordBatch]) -> int:
        return sum(len(t) for item in batch for t in item.texts)

    def get_metrics_namespace(self) -> str:
        return "judgemine.embed"
