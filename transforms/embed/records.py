"""The embed stage's DoFns around RunInference: a chunk's records in, its vectors out."""
from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import apache_beam as beam
import pyarrow as pa
from apache_beam.metrics import Metrics

from judgemine.schemas import CANDIDATES, QUERIES, embeddings_schema, read_table, write_table
from judgemine.schemas.layout import StageFolder
from judgemine.transforms.common.chunks import Chunk
from judgemine.transforms.common.rejects import reject_row
from judgemine.transforms.common.text import strip_image_tokens
from judgemine.transforms.embed.base import EmbeddingBatch, RecordBatch

CANDIDATE_POOL = "candidate-pool"  # the rejects `source` of a candidate left out of the pool


class ReadRecords(beam.DoFn):
    """One chunk's records for the embedder. A text-only embedder gets the text with image markers removed;
    records it cannot read (image only) go to the rejects output."""

    def __init__(self, query_prompt: str, candidate_prompt: str, reads_images: bool) -> None:
        self._prompts = {"queries": query_prompt, "candidates": candidate_prompt}
        self._reads_images = reads_images
        self._unsupported = Metrics.counter("judgemine.embed", "unsupported_modality")

    def process(self, chunk: Chunk) -> Iterable[Any]:
        if chunk.side == "queries":
            rows = read_table(chunk.path, QUERIES).to_pylist()
            records = [(r["query_id"], r["query_text"], r["query_image"], r) for r in rows]
        else:
            rows = read_table(chunk.path, CANDIDATES).to_pylist()
            records = [(r["candidate_id"], r["text"], r["image"], r) for r in rows]
        batch = RecordBatch(chunk, [], [], [])
        for rid, text, image, row in records:
            if not self._reads_images:
                text, image = strip_image_tokens(text), ""
                if not text:
                    self._unsupported.inc()
                    yield beam.pvalue.TaggedOutput("rejects", _unsupported(chunk.side, row))
                    continue
            batch.ids.append(rid)
            batch.texts.append(self._prompts[chunk.side] + text)
            batch.images.append(image)
        yield batch


def _unsupported(side: str, row: dict[str, Any]) -> dict[str, Any]:
    reason = "unsupported_modality: the text embedder cannot read an image-only record"
    raw = json.dumps(row, ensure_ascii=False)
    if side == "queries":
        return reject_row("embed", reason, row["source"], row["line"], raw, row["query_id"])
    return reject_row("embed", reason, CANDIDATE_POOL, -1, raw)


class WriteEmbeddings(beam.DoFn):
    def __init__(self, folder: StageFolder) -> None:
        self._folder = folder
        self._vectors = Metrics.counter("judgemine.embed", "vectors_written")

    def process(self, batch: EmbeddingBatch) -> None:
        dim = batch.vectors.shape[1]
        flat = pa.array(batch.vectors.reshape(-1), pa.float32())
        table = pa.table({"id": pa.array(batch.ids, pa.string()),
                          "vector": pa.FixedSizeListArray.from_arrays(flat, dim)})
        write_table(table, self._folder.part(batch.chunk.side, batch.chunk.index),
                    embeddings_schema(dim))
        self._vectors.inc(len(batch.ids))
