"""Stage 2: every query and candidate to an L2-normalised vector, one part file per ingest chunk."""
from __future__ import annotations

import json
import logging
import os
import time
from typing import Any, Iterable

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import RunInference
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.artifacts import (atomic_dir, chain_fingerprint, list_parts, part_name, require_stage, stage_dir,
                                 write_stage_record)
from pipelines.settings import Settings
from schemas import CANDIDATES, QUERIES, REJECTS, embeddings_schema, read_table, write_table
from transforms.chunks import Chunk, EmbeddingBatch, RecordBatch, chunks_of
from transforms.text import strip_image_tokens
from transforms.embedder_backends import EmbedderSpec
from transforms.embedders import EmbedHandler

FINGERPRINT_SETTINGS = ("embed_backend", "embed_model", "query_prompt", "candidate_prompt", "image_root")
CANDIDATE_POOL = "candidate-pool"
log = logging.getLogger("judgemine")


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
    if side == "queries":
        return {"stage": "embed", "reason": reason, "source": row["source"], "line": row["line"],
                "query_id": row["query_id"], "row": json.dumps(row, ensure_ascii=False)}
    return {"stage": "embed", "reason": reason, "source": CANDIDATE_POOL, "line": -1, "query_id": None,
            "row": json.dumps(row, ensure_ascii=False)}


class WriteEmbeddings(beam.DoFn):
    def __init__(self, directory: str) -> None:
        self._dir = directory
        self._vectors = Metrics.counter("judgemine.embed", "vectors_written")

    def process(self, batch: EmbeddingBatch) -> None:
        dim = batch.vectors.shape[1]
        flat = pa.array(batch.vectors.reshape(-1), pa.float32())
        table = pa.table({"id": pa.array(batch.ids, pa.string()),
                          "vector": pa.FixedSizeListArray.from_arrays(flat, dim)})
        write_table(table, os.path.join(self._dir, batch.chunk.side, part_name(batch.chunk.index)),
                    embeddings_schema(dim))
        self._vectors.inc(len(batch.ids))
        log.info("embed: %s chunk %d done: %d vectors", batch.chunk.side, batch.chunk.index, len(batch.ids))


def fingerprint(settings: Settings) -> str:
    return chain_fingerprint(require_stage(settings.output, "ingest")["fingerprint"],
                             settings.fingerprint(*FINGERPRINT_SETTINGS))


def run_embed(settings: Settings, options: PipelineOptions) -> dict[str, Any]:
    started = time.time()
    fp = fingerprint(settings)
    ingest = stage_dir(settings.output, "ingest")
    chunks = (chunks_of("queries", list_parts(os.path.join(ingest, "queries")))
              + chunks_of("candidates", list_parts(os.path.join(ingest, "candidates"))))
    spec = EmbedderSpec(settings.embed_backend, settings.resolved_embed_model, settings.embed_batch_size,
                        settings.device, settings.embed_dtype, settings.image_root)
    with atomic_dir(stage_dir(settings.output, "embed")) as tmp:
        for side in ("queries", "candidates"):
            os.makedirs(os.path.join(tmp, side))
        with beam.Pipeline(options=options) as p:
            texts = (p
                     | "ListChunks" >> beam.Create(chunks)
                     | "SpreadChunks" >> beam.Reshuffle()
                     | "ReadRecords" >> beam.ParDo(
                         ReadRecords(settings.query_prompt, settings.candidate_prompt, spec.reads_images)
                     ).with_outputs("rejects", main="texts"))
            _ = (texts.texts
                 | "Embed" >> RunInference(EmbedHandler(spec))
                 | "WriteEmbeddings" >> beam.ParDo(WriteEmbeddings(tmp)))
            _ = (texts.rejects
                 | "GatherRejects" >> beam.combiners.ToList()
                 | "WriteRejects" >> beam.Map(
                     lambda rows: write_table(pa.Table.from_pylist(rows, schema=REJECTS),
                                              os.path.join(tmp, "rejects.parquet"), REJECTS)))
        record = write_stage_record(tmp, "embed", fp, started, _count_embed(tmp))
    return record


def _count_embed(directory: str) -> dict[str, Any]:
    def rows(side: str) -> int:
        return sum(pq.ParquetFile(p).metadata.num_rows for p in list_parts(os.path.join(directory, side)))

    rejects = read_table(os.path.join(directory, "rejects.parquet"), REJECTS, ["source"]).to_pylist()
    dropped_candidates = sum(1 for r in rejects if r["source"] == CANDIDATE_POOL)
    return {"queries": rows("queries"), "candidates": rows("candidates"),
            "rejected_queries": len(rejects) - dropped_candidates, "dropped_candidates": dropped_candidates}
