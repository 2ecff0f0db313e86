"""Stage 3, index: the FAISS inner-product index over every candidate vector, and its row -> id list."""
from __future__ import annotations

import os
from typing import Any

import apache_beam as beam
import pyarrow.parquet as pq

from judgemine.pipelines.stage import Counters, Stage, StageContext
from judgemine.transforms.retrieve.search import BuildIndex


def build(p: beam.Pipeline, ctx: StageContext) -> None:
    s = ctx.settings
    _ = (p | "IndexSpec" >> beam.Create([s.index_factory])
         | "BuildIndex" >> beam.ParDo(BuildIndex(ctx.input_dir("embed"), ctx.directory, s.index_factory, s.seed)))


def count(ctx: StageContext, counters: Counters) -> dict[str, Any]:
    return {"candidates": pq.ParquetFile(os.path.join(ctx.directory, "ids.parquet")).metadata.num_rows,
            "factory": ctx.settings.index_factory}


STAGE = Stage("index", upstream=("embed",), settings=("index_factory", "seed"), build=build, count=count,
              version="1", throughput="candidates")
