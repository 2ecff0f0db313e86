"""Judge pairs from the bundled sample: each query with its positive and with other subsets' targets."""
from __future__ import annotations

import glob
import json
import os

from transforms.judge_prompt import Side

SAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "sample")


def sample_pairs(n: int, per_query: int = 16) -> tuple[list[Side], list[Side]]:
    rows = []
    for path in sorted(glob.glob(os.path.join(SAMPLE, "*.jsonl"))):
        if "bad_rows" in path:
            continue
        with open(path, encoding="utf-8") as f:
            rows += [json.loads(line) for line in f]
    queries, candidates = [], []
    i = 0
    while len(queries) < n:
        q = rows[i % len(rows)]
        for j in range(per_query):  # a query's pairs together, as the pipeline schedules them
            queries.append(Side(q["query_text"]))
            candidates.append(Side(rows[(i * 7 + j * 13) % len(rows)]["pos_text"]))
        i += 1
    return queries[:n], candidates[:n]
