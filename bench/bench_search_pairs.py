"""The retrieve stage's search against raw FAISS on the same chunk, in pairs: the stage's own read and
exclusion-aware search of a query chunk (`SearchShard`'s, what its search_ms counter times) and
`index.search(queries, K + 1)` on the very index it loaded, called alternately; the median of the per-pair
ratios. Two adjacent calls see the same host speed, so its drift cancels here, where two runs some seconds apart
on this machine differed by up to 2x. Times bench-retrieve's "in the stage" figure (the stage's search seconds
over its seconds, from one run) it gives the stage's throughput against raw FAISS without comparing runs made at
different times (bench/RESULTS.md). RUN_DIR: any run with committed ingest, embed and index stages (e.g. one that
bench-retrieve wrote). Usage: python -m bench.bench_search_pairs RUN_DIR [PAIRS]"""
from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from apache_beam.utils.shared import Shared

from bench.harness import save
from judgemine.schemas import list_parts
from judgemine.schemas.layout import RunLayout
from judgemine.transforms.common.chunks import chunks_of
from judgemine.transforms.common.progress import StageWork
from judgemine.transforms.retrieve.search import SearchShard, SearchSpec

K = 50


def timed(call: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    call()
    return time.perf_counter() - t0


def paired(run: str, pairs: int = 15) -> dict[str, Any]:
    layout = RunLayout(run)
    spec = SearchSpec(layout.stage("index"), layout.stage("ingest"), K, device="cpu")
    search = SearchShard(spec, Shared(), StageWork())
    chunk = chunks_of("queries", list_parts(RunLayout(run).stage("embed").folder("queries")))[0]
    _, vectors, excluded = search._read(chunk)
    assert excluded is not None, f"{run}: its first query chunk is empty"
    index = search._search(0, vectors, excluded)[0].index  # loaded with the stage's search parameters
    sides = {"raw": lambda: index.search(vectors, K + 1), "stage": lambda: search._search(0, vectors, excluded)}
    took: dict[str, list[float]] = {"raw": [], "stage": []}
    for i in range(pairs):
        for side in ("raw", "stage") if i % 2 == 0 else ("stage", "raw"):
            took[side].append(timed(sides[side]))
    ratios = [raw / stage for raw, stage in zip(took["raw"], took["stage"])]
    return {"queries": len(vectors), "pairs": pairs, "raw_ms": round(1000 * statistics.median(took["raw"]), 1),
            "stage_search_ms": round(1000 * statistics.median(took["stage"]), 1),
            "raw_over_stage_search": round(statistics.median(ratios), 3),
            "min_max": [round(min(ratios), 3), round(max(ratios), 3)]}


if __name__ == "__main__":
    if len(sys.argv) < 2 or not os.path.isdir(RunLayout(sys.argv[1]).stage("index").path):
        print("usage: python -m bench.bench_search_pairs RUN_DIR [PAIRS] (make bench-search-pairs RUN=DIR): a run "
              "directory with committed ingest, embed and index stages", file=sys.stderr)
        sys.exit(2)
    save("bench_search_pairs", paired(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 15),
         "make bench-search-pairs RUN=DIR")
