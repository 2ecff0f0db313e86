"""make bench-stages: the embed and retrieve stages against the raw library calls on the same data, one process.

Data: 10,000 pairs whose texts are pairs of real sentences from the bundled sample (so lengths vary as in
real corpora). Embed: raw = one `SentenceTransformer.encode` over every query and candidate text (it sorts
by length itself); stage = `judgemine embed` (DirectRunner, chunks of --chunk-size, Parquet out). Retrieve:
raw = a FAISS IndexFlatIP built and searched for K + 1 over the same vectors; stage = `judgemine index` +
`judgemine retrieve` (exclusions, Parquet out). Ratio = raw seconds / stage seconds (1.0 = no overhead).
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import tempfile
import time

import faiss
import numpy as np
from apache_beam.options.pipeline_options import PipelineOptions

from bench.harness import save
from judgemine.pipelines.run.runner import run_one
from judgemine.pipelines.settings import Settings
from judgemine.transforms.index.faiss_index import read_vectors
from judgemine.transforms.ingest.readers import read_rows

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sentences() -> list[str]:
    """The distinct query and positive texts of the bundled text sample (its bad rows skipped)."""
    return sorted({row[k] for path in glob.glob(os.path.join(ROOT, "examples", "sample", "*.jsonl"))
                   for _, row in read_rows(path) if isinstance(row, dict)
                   for k in ("query_text", "pos_text") if isinstance(row.get(k), str) and row[k]})


def write_pairs(path: str, n: int) -> None:
    base = sentences()
    rng = np.random.default_rng(0)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            a, b, c, d = (base[j] for j in rng.integers(0, len(base), 4))
            f.write(json.dumps({"query_id": f"q{i}", "query_text": f"{a} {b}", "pos_text": f"{c} {d} ({i})"}) + "\n")


def main() -> None:
    work = tempfile.mkdtemp(prefix="bench-stages-")
    try:
        pairs = os.path.join(work, "pairs.jsonl")
        write_pairs(pairs, 10_000)
        settings = Settings(output=os.path.join(work, "out"), pairs=(pairs,), chunk_size=2048, top_k=50,
                            device="cpu")
        options = PipelineOptions(["--direct_num_workers", "1"])
        run_one("ingest", settings, options)
        with open(pairs, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f]
        texts = [r["query_text"] for r in rows] + [r["pos_text"] for r in rows]

        from sentence_transformers import SentenceTransformer
        t0 = time.time()
        model = SentenceTransformer(settings.resolved_embed_model, device="cpu", local_files_only=True)
        model.encode(texts, batch_size=settings.embed_batch_size, normalize_embeddings=True)
        raw_embed = time.time() - t0
        t0 = time.time()
        run_one("embed", settings, options)
        stage_embed = time.time() - t0

        _, queries = read_vectors(sorted(glob.glob(os.path.join(settings.output, "stages/embed/queries/*.parquet"))))
        _, cands = read_vectors(sorted(glob.glob(os.path.join(settings.output, "stages/embed/candidates/*.parquet"))))
        t0 = time.time()
        index = faiss.IndexFlatIP(cands.shape[1])
        index.add(cands)
        index.search(queries, settings.top_k + 1)
        raw_retrieve = time.time() - t0
        t0 = time.time()
        run_one("index", settings, options)
        run_one("retrieve", settings, options)
        stage_retrieve = time.time() - t0
        report = {
            "texts": len(texts), "queries": len(queries), "candidates": len(cands),
            "faiss_threads": faiss.omp_get_max_threads(),
            "embed": {"raw_s": round(raw_embed, 2), "stage_s": round(stage_embed, 2),
                      "raw_texts_per_s": round(len(texts) / raw_embed, 1),
                      "stage_texts_per_s": round(len(texts) / stage_embed, 1),
                      "ratio_stage_over_raw": round(raw_embed / stage_embed, 3)},
            "retrieve": {"raw_s": round(raw_retrieve, 3), "stage_s": round(stage_retrieve, 3),
                         "ratio_stage_over_raw": round(raw_retrieve / stage_retrieve, 3)},
        }
        save("bench_stages", report)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
