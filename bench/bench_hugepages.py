"""Raw HNSW search speed with and without transparent huge pages for FAISS's own memory: each side a fresh
process loading the index of a committed `judgemine index` stage (any run directory, e.g. bench-retrieve's
at 1M) and searching the run's first query chunk 5 times; the child processes differ only in
GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (glibc's malloc then advises THP for its large allocations).
Usage: python -m bench.bench_hugepages RUN_DIR [PAIRS]"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

from judgemine.schemas import list_parts
from judgemine.schemas.layout import RunLayout
from judgemine.transforms.index.faiss_index import CandidateIndex, read_vectors

TUNABLE = "glibc.malloc.hugetlb=1"


def search_once(run: str) -> str:
    _, queries = read_vectors(list_parts(RunLayout(run).stage("embed").folder("queries"))[:1])
    index = CandidateIndex(RunLayout(run).stage("index").index_shard(0), 0, 0, 100, "cpu", "")
    index.index.search(queries[:256], 51)
    seconds = []
    for _ in range(5):
        t0 = time.perf_counter()
        index.index.search(queries, 51)
        seconds.append(time.perf_counter() - t0)
    with open("/proc/self/smaps_rollup", encoding="utf-8") as f:
        huge = next(int(line.split()[1]) for line in f if line.startswith("AnonHugePages"))
    return f"{len(queries) / statistics.median(seconds):.0f} queries/s, AnonHugePages {huge / 2**20:.2f} GB"


def main(run: str, pairs: int) -> None:
    for _ in range(pairs):
        for tunable in ("", TUNABLE):
            env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}  # "as is": none set
            if tunable:
                env["GLIBC_TUNABLES"] = tunable
            out = subprocess.run([sys.executable, "-m", "bench.bench_hugepages", "--child", run], env=env,
                                 capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            print(f"{tunable or 'as is':24s} {out}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print("usage: python -m bench.bench_hugepages RUN_DIR [PAIRS] (make bench-hugepages RUN=DIR): a run "
              "directory whose index stage holds an HNSW index", file=sys.stderr)
        sys.exit(2)
    if sys.argv[1] == "--child":
        print(search_once(sys.argv[2]))
    else:
        main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 2)
