"""The embedding ModelHandler for RunInference: one element is one chunk, embedded in one call of the embedder
named in the spec (embed/backends/); RunInference batches one element at a time."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import ModelHandler

from judgemine.transforms.common.memory import release_memory
from judgemine.transforms.common.progress import StageWork
from judgemine.transforms.embed.backends import load_embedder
from judgemine.transforms.embed.base import Embedder, EmbedderSpec, EmbeddingBatch, RecordBatch


class EmbedHandler(ModelHandler[RecordBatch, EmbeddingBatch, Embedder]):
    def __init__(self, spec: EmbedderSpec, work: StageWork) -> None:
        super().__init__(min_batch_size=1, max_batch_size=1)
        self._spec, self._work = spec, work
        self._repeated = Metrics.counter("judgemine.embed", "texts_repeated")

    def load_model(self) -> Embedder:
        return load_embedder(self._spec)

    def run_inference(self, batch: Sequence[RecordBatch], model: Embedder,
                      inference_args: dict[str, Any] | None = None) -> Iterable[EmbeddingBatch]:
        for item in batch:
            vectors = self._embed_unique(model, item)
            release_memory()
            self._work.add(len(item.ids))
            yield EmbeddingBatch(item.chunk, item.ids, vectors)

    def _embed_unique(self, model: Embedder, item: RecordBatch) -> Any:
        """Each distinct (text, image) of the chunk embedded once (queries with the same content share a chunk,
        so a repeated gloss or caption costs nothing), the vectors then given back in record order."""
        first: dict[tuple[str, str], int] = {}
        where = [first.setdefault(key, len(first)) for key in zip(item.texts, item.images)]
        self._repeated.inc(len(where) - len(first))
        if len(first) == len(where):
            return model.embed(item.texts, item.images)
        texts, images = zip(*first) if first else ((), ())
        return model.embed(list(texts), list(images))[where]

    def get_num_bytes(self, batch: Sequence[RecordBatch]) -> int:
        return sum(len(t) for item in batch for t in item.texts)

    def get_metrics_namespace(self) -> str:
        return "judgemine.embed"
