"""Stage 2: every query and candidate to an L2-normalised vector, one part file per ingest chunk."""
from __future__ import annotations

import json
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
from transforms.chunks import Chunk, EmbeddingBatch, TextBatch, chunks_of
from transforms.text import strip_image_tokens
from transforms.embedders import SentenceTransformerHandler

FINGERPRINT_SETTINGS = ("embed_model", "query_prompt", "candidate_prompt")
CANDIDATE_POOL = "candidate-pool"


class ReadTexts(beam.DoFn):
    """One chunk's texts for a text embedder; records it cannot read (image only) go to the rejects output."""

    def __init__(self, query_prompt: str, candidate_prompt: str) -> None:
        self._prompts = {"queries": query_prompt, "candidates": candidate_prompt}
        self._unsupported = Metrics.counter("judgemine.embed", "unsupported_modality")

    def process(self, chunk: Chunk) -> Iterable[Any]:
        if chunk.side == "queries":
            rows = read_table(chunk.path, QUERIES).to_pylist()
            records = [(r["query_id"], r["query_text"], r) for r in rows]
        else:
            rows = read_table(chunk.path, CANDIDATES).to_pylist()
            records = [(r["candidate_id"], r["text"], r) for r in rows]
        ids, texts = [], []
        for rid, text, row in records:
            clean = strip_image_tokens(text)
            if not clean:
                self._unsupported.inc()
                yield beam.pvalue.TaggedOutput("rejects", _unsupported(chunk.side, row))
                continue
            ids.append(rid)
            texts.append(self._prompts[chunk.side] + clean)
        yield TextBatch(chunk, ids, texts)


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


def fingerprint(settings: Settings) -> str:
    return chain_fingerprint(require_stage(settings.output, "ingest")["fingerprint"],
                             settings.fingerprint(*FINGERPRINT_SETTINGS))


def run_embed(settings: Settings, options: PipelineOptions) -> dict[str, Any]:
    started = time.time()
    fp = fingerprint(settings)
    ingest = stage_dir(settings.output, "ingest")
    chunks = (chunks_of("queries", list_parts(os.path.join(ingest, "queries")))
              + chunks_of("candidates", list_parts(os.path.join(ingest, "candidates"))))
    handler = SentenceTransformerHandler(settings.resolved_embed_model, settings.embed_batch_size, settings.device)
    with atomic_dir(stage_dir(settings.output, "embed")) as tmp:
        for side in ("queries", "candidates"):
            os.makedirs(os.path.join(tmp, side))
        with beam.Pipeline(options=options) as p:
            texts = (p
                     | "ListChunks" >> beam.Create(chunks)
                     | "SpreadChunks" >> beam.Reshuffle()
                     | "ReadTexts" >> beam.ParDo(
                         ReadTexts(settings.query_prompt, settings.candidate_prompt)).with_outputs(
                             "rejects", main="texts"))
            _ = (texts.texts
                 | "Embed" >> RunInference(handler)
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
