"""make bench-retrieve: every index type through the index and retrieve stages against the raw FAISS calls on
the same vectors, one process; recall@K against exact search; what the mining rule then keeps.

Data: clustered unit vectors of dimension 384 (1,000 Gaussian clusters, noise 0.6 around unit centres: neighbours
are close but not duplicates), written straight into a run directory as committed ingest and embed stages (each
query's positive is a pool vector of its cluster, excluded from its candidates as ingest would; candidate ids are
content ids as ingest makes them, "c" + 24 hex digits, the pool in their order). Per index:
- build: `judgemine index` (seeded training sample, FAISS's rule of thumb) against its own FAISS train + add
  seconds (build.json). Search: `judgemine retrieve` (K = 50, exclusions, Parquet out) against raw FAISS on the
  very index the stage built, read from its file with the same search parameters: `index.search(q, K + 1)`.
  Each side also runs on the first query chunk alone (the same pool and index): the stage's fixed cost is its
  time there minus raw's (pipeline start, index load, commit: seconds that do not grow with the run), and the
  throughput ratio is raw's time for the queries past the first chunk over the stage's (>= 0.9 is the target;
  the stage's without the index loads of its two runs, counter index_load_ms: the same 1.7 GB index took 1.7 to
  2.8 s to load from one run to the next, more than a 4,096-query chunk's search), taken per round (raw, raw on
  the first chunk, the stage, the stage on the first chunk, then the two raw runs again, whose means are the
  round's raw times: a drift across the round cancels) and reported as the median with its range; the
  end-to-end ratio is raw seconds / stage seconds. The same throughput inside the stage, which host drift
  cannot move (both sides from one run): its search seconds (counter search_ms) for the queries past the first
  chunk over its seconds for
  them (as above); FAISS's throughput on 4,096-query calls equals one call's (checked). Where the host drifts,
  the drift-free estimate against raw is that figure times the stage's search against raw FAISS on one chunk,
  the two called alternately (bench/bench_search_pairs.py): ratio_stage_over_raw_paired.
  It holds while nothing in the stage runs beside the search (as now): work overlapped with it would slow the
  search and raise the figure at the same wall time (bench/RESULTS.md).
  ROUNDS rounds (7 at 100k, 3 at 1M) after one untimed warm-up of the first-chunk runs.
- sweep: raw FAISS on the first query chunk at each nprobe (IVF) or efSearch (HNSW): recall@50 and queries/s.
- recall@50: the share of the exact top 50 (Flat, positives excluded) the index returns, and the share it misses.
- mined: the paper's rule on similarity scores (`--judge-backend similarity`, relative margin 0.05, top 10)
  applied to each index's candidates against the exact ones: the share of the exact run's chosen negatives kept.
Peak memory of each index (its serialized size plus the search's working set is what a worker holds) is the
index file's size. Usage: python -m bench.bench_retrieve [POOL ...] (default 100000 1000000); results in
out/bench-retrieve/pool-POOL.json."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any

import faiss
import numpy as np
import pyarrow as pa
from apache_beam.options.pipeline_options import PipelineOptions

from bench.bench_search_pairs import paired, timed
from bench.harness import save
from judgemine.pipelines.run.artifacts import published_files, write_json
from judgemine.pipelines.run.runner import run_one
from judgemine.pipelines.settings import Settings
from judgemine.schemas import (
    INDEX_IDS,
    QUERIES,
    RETRIEVAL,
    embeddings_schema,
    list_parts,
    part_name,
    read_table,
    write_table,
)
from judgemine.schemas.layout import RunLayout
from judgemine.transforms.common.content import content_id
from judgemine.transforms.index.faiss_index import BUILD_INFO
from judgemine.transforms.index.index_choice import auto_factory, search_parameters
from judgemine.transforms.mine.rule import MiningRule, query_rng, select_negatives

DIM, K, CLUSTERS, CHUNK = 384, 50, 1000, 4096
ROUNDS = {100_000: 7}  # per pool; 3 elsewhere (the 1M Flat searches take minutes)


def clustered(n: int, centres: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    label = rng.integers(0, len(centres), n)
    v = centres[label] + 0.6 * rng.standard_normal((n, DIM), dtype=np.float32) / np.sqrt(DIM)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32), label


def write_run(out: str, pool: int, queries: int) -> dict[str, Any]:
    """Committed ingest + embed stages of synthetic vectors (ids c<i> / q<i>)."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((CLUSTERS, DIM), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    cands, cand_label = clustered(pool, centres, rng)
    qvecs, q_label = clustered(queries, centres, rng)
    by_cluster = {c: np.flatnonzero(cand_label == c) for c in range(CLUSTERS)}
    pos = np.array([rng.choice(by_cluster[c]) if len(by_cluster[c]) else 0 for c in q_label])
    cand_ids = np.array([content_id(f"bench {i}", "") for i in range(pool)], dtype=object)  # as ingest names them
    order = np.argsort(cand_ids, kind="stable")  # and orders the pool (FAISS row i = the i-th id)
    for stage in ("ingest", "embed"):
        for side in ("queries", "candidates"):
            os.makedirs(os.path.join(RunLayout(out).stage(stage).path, side), exist_ok=True)
    schema = embeddings_schema(DIM)
    for part, start in enumerate(range(0, pool, CHUNK)):
        rows = order[start:start + CHUNK]
        vectors = pa.FixedSizeListArray.from_arrays(pa.array(cands[rows].reshape(-1)), DIM)
        write_table(pa.table({"id": pa.array(cand_ids[rows], pa.string()), "vector": vectors}),
                    os.path.join(RunLayout(out).stage("embed").folder("candidates"), part_name(part)), schema)
    for part, start in enumerate(range(0, queries, CHUNK)):
        end = min(queries, start + CHUNK)
        qids = [f"q{i}" for i in range(start, end)]
        write_table(pa.table({"id": qids, "vector": pa.FixedSizeListArray.from_arrays(
            pa.array(qvecs[start:end].reshape(-1)), DIM)}), os.path.join(RunLayout(out).stage("embed").path, "queries",
                                                                         part_name(part)), schema)
        n = end - start
        write_table(pa.table({"query_id": qids, "query_text": qids, "query_image": [""] * n,
                              "query_content_id": qids, "pos_id": list(cand_ids[pos[start:end]]),
                              "pos_text": [""] * n, "pos_image": [""] * n,
                              "excluded_ids": [[c] for c in cand_ids[pos[start:end]]], "dataset": ["bench"] * n,
                              "source": ["bench"] * n, "line": list(range(start, end))}),
                    os.path.join(RunLayout(out).stage("ingest").folder("queries"), part_name(part)), QUERIES)
    for stage in ("ingest", "embed"):
        record = {"stage": stage, "fingerprint": f"bench-{pool}-{queries}", "seconds": 0, "counts": {}}
        record["files"] = published_files(out, [RunLayout(out).stage(stage).path], {})
        write_json(RunLayout(out).stage(stage).record, record)
    return {"cands": cands, "queries": qvecs, "pos": pos, "cand_ids": cand_ids}


def _retrieved(out: str) -> dict[str, list[tuple[str, float]]]:
    hits: dict[str, list[tuple[str, float]]] = {}
    for path in list_parts(RunLayout(out).stage("retrieve").path):
        for r in read_table(path, RETRIEVAL).to_pylist():
            hits.setdefault(r["query_id"], []).append((r["candidate_id"], r["similarity"]))
    return hits


def _mined(hits: dict[str, list[tuple[str, float]]], s_pos: dict[str, float]) -> dict[str, set[str]]:
    rule = MiningRule(relative_margin=0.05, sampling="top", num_negatives=10)
    out = {}
    for qid, cands in hits.items():
        sel = select_negatives([s for _, s in cands], s_pos[qid], rule, query_rng(rule.seed, qid))
        out[qid] = set() if sel.fallback else {cands[p][0] for p in sel.positions}
    return out


def first_chunk_copy(out: str, small: str) -> None:
    """`out` with its first query chunk only (files hard-linked, records relisted): the same pool and index, so
    the stage's time on it is its fixed cost (pipeline start, index load, commit) plus one chunk."""
    shutil.rmtree(small, ignore_errors=True)
    shutil.copytree(out, small, copy_function=os.link, ignore=shutil.ignore_patterns("retrieve"))
    for stage in ("ingest", "embed"):
        for path in list_parts(RunLayout(small).stage(stage).folder("queries"))[1:]:
            os.remove(path)
        with open(RunLayout(small).stage(stage).record, encoding="utf-8") as f:
            record = json.load(f)
        folder = RunLayout(small).stage(stage)
        record["files"] = {rel: size for rel, size in published_files(small, [folder.path], {}).items()
                           if not rel.endswith("stage.json")}
        os.remove(RunLayout(small).stage(stage).record)  # a new file, not a write through the link into `out`'s record
        write_json(RunLayout(small).stage(stage).record, record)


def sweep(index: faiss.Index, ids: np.ndarray, data: dict[str, Any], exact: dict[str, list[tuple[str, float]]],
          values: list[int]) -> list[dict[str, Any]]:
    """Raw FAISS on the first query chunk at each nprobe (IVF) or efSearch (HNSW): recall@K against the exact
    stage result (each query's positive dropped from its top K + 1, as the stage excludes it) and queries/s;
    `ids`: the candidate id of each index row."""
    queries = data["queries"][:CHUNK]
    pos = data["cand_ids"][data["pos"][:CHUNK]]
    rows = []
    for value in values:
        params = search_parameters(index, value, value, 2 * K)
        faiss.ParameterSpace().set_index_parameters(index, params)
        t0 = time.monotonic()
        _, found = index.search(queries, K + 1)
        seconds = time.monotonic() - t0
        recall = []
        for i, row in enumerate(found):
            got = [c for c in ids[row[row >= 0]] if c != pos[i]][:K]
            want = {c for c, _ in exact.get(f"q{i}", [])}
            if want:
                recall.append(len(want.intersection(got)) / len(want))
        rows.append({"search_params": params, "recall_at_50": round(statistics.fmean(recall), 4),
                     "queries_per_s": round(len(queries) / seconds, 1)})
    return rows


def measure(pool: int, queries: int, factories: list[str], train_size: int = 0,
            sweeps: dict[str, list[int]] | None = None) -> dict[str, Any]:
    work = tempfile.mkdtemp(prefix="bench-retrieve-")
    out, small = os.path.join(work, "run"), os.path.join(work, "first-chunk")
    data = write_run(out, pool, queries)
    options = PipelineOptions(["--direct_num_workers", "1"])
    s_pos = {f"q{i}": float(data["queries"][i] @ data["cands"][p]) for i, p in enumerate(data["pos"])}
    rows: dict[str, Any] = {}
    exact: dict[str, list[tuple[str, float]]] = {}
    rounds = ROUNDS.get(pool, 3)
    try:
        for factory in factories:
            settings = Settings(output=out, index_factory=factory, top_k=K, device="cpu", judge_backend="similarity",
                                index_train_size=train_size)
            built = factory if factory != "auto" else auto_factory(pool)[0]
            build_stage = timed(lambda: run_one("index", settings, options))
            shard = os.path.join(RunLayout(out).stage("index").path, "shard-00000")
            with open(os.path.join(shard, BUILD_INFO), encoding="utf-8") as f:
                info = json.load(f)
            # raw: FAISS on the very index the stage built (the same training sample and codes), read from its
            # file, with the same search parameters; its build time is the FAISS train + add the stage timed
            index = faiss.read_index(os.path.join(shard, "index.faiss"))
            params = search_parameters(index, 0, 0, 2 * K)
            if params:
                faiss.ParameterSpace().set_index_parameters(index, params)
            first_chunk_copy(out, small)
            first = dataclasses.replace(settings, output=small)
            searched: dict[str, float] = {}  # the stage's own search seconds (its search_ms counter) per run
            loaded: dict[str, float] = {}  # and its index load seconds (index_load_ms)

            def stage(side: str, run: Settings) -> None:
                counters = run_one("retrieve", run, options)["counters"]
                searched[side], loaded[side] = counters["search_ms"] / 1000, counters["index_load_ms"] / 1000

            sides = {"raw": lambda: index.search(data["queries"], K + 1),
                     "raw_first": lambda: index.search(data["queries"][:CHUNK], K + 1),
                     "stage": lambda: stage("stage", settings), "stage_first": lambda: stage("stage_first", first)}
            sides["raw_first"](), sides["stage_first"]()  # warm-up, not timed: the first searches after a load
            wall: dict[str, list[float]] = {side: [] for side in sides}
            past_first: list[float] = []  # the stage's seconds past the first chunk, without its index loads
            in_stage: list[float] = []
            for _ in range(rounds):  # raw before and after the stage runs (ABBA): a drift across the round cancels
                took: dict[str, list[float]] = {side: [] for side in sides}
                for side in ("raw", "raw_first", "stage", "stage_first", "raw_first", "raw"):
                    took[side].append(timed(sides[side]))
                for side, seconds in took.items():
                    wall[side].append(statistics.fmean(seconds))
                past_first.append((wall["stage"][-1] - loaded["stage"])
                                  - (wall["stage_first"][-1] - loaded["stage_first"]))
                in_stage.append((searched["stage"] - searched["stage_first"]) / past_first[-1])
            pairs = paired(out)  # the stage's search against raw on one chunk, call by call
            t = {side: statistics.median(v) for side, v in wall.items()}
            per_round = [(wall["raw"][r] - wall["raw_first"][r]) / past_first[r] for r in range(rounds)]
            hits = _retrieved(out)
            if factory == "Flat":
                exact = hits
            size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(RunLayout(out).stage("index").path)
                       for f in fs if f == "index.faiss")
            recall = statistics.fmean(len({c for c, _ in hits.get(q, [])} & {c for c, _ in want}) / len(want)
                                      for q, want in exact.items() if want)
            mined_exact, mined = _mined(exact, s_pos), _mined(hits, s_pos)
            kept = [len(mined[q] & m) / len(m) for q, m in mined_exact.items() if m]
            rest = queries - CHUNK  # the queries past the first chunk: what the steady rates are over
            rows[built] = {
                "build_raw_s": round(info["train_seconds"] + info["add_seconds"], 2),
                "build_stage_s": round(build_stage, 2), "trained_on": info["trained_on"], "search_params": params,
                "search_raw_s": round(t["raw"], 3), "search_stage_s": round(t["stage"], 3),
                "ratio_end_to_end": round(t["raw"] / t["stage"], 3),
                "stage_fixed_s": round(t["stage_first"] - t["raw_first"], 2),
                "raw_queries_per_s": round(rest / (t["raw"] - t["raw_first"]), 1),
                "stage_queries_per_s": round(rest / statistics.median(past_first), 1),
                "ratio_stage_over_raw": round(statistics.median(per_round), 3),
                "ratio_rounds_min_max": [round(min(per_round), 3), round(max(per_round), 3)],
                "ratio_search_in_stage": round(statistics.median(in_stage), 3),
                "ratio_search_in_stage_min_max": [round(min(in_stage), 3), round(max(in_stage), 3)],
                "raw_over_stage_search_paired": pairs["raw_over_stage_search"],
                "ratio_stage_over_raw_paired": round(statistics.median(in_stage) * pairs["raw_over_stage_search"], 3),
                "recall_at_50": round(recall, 4), "exact_top50_missed": round(1 - recall, 4),
                "mined_negatives_kept": round(statistics.fmean(kept), 4) if kept else None,
                "index_mib": round(size / 2**20, 1),
                "times": {k: [round(x, 3) for x in v] for k, v in wall.items()}}
            kind = "HNSW" if "HNSW" in built else "IVF" if "IVF" in built else ""
            if sweeps and kind in sweeps:
                ids = np.array(read_table(os.path.join(shard, "ids.parquet"), INDEX_IDS).column(
                    "candidate_id").to_pylist(), dtype=object)
                rows[built]["sweep"] = sweep(index, ids, data, exact, sweeps[kind])
            print(json.dumps({"pool": pool, "index": built, **rows[built]}), flush=True)
            index = None  # the raw index freed before the next one is built
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


def main(pools: list[int]) -> None:
    for pool in pools:
        report = {"date": time.strftime("%Y-%m-%d"), "cores": os.cpu_count(),
                  "faiss_threads": faiss.omp_get_max_threads(), "dim": DIM, "k": K, "pool": pool}
        if pool <= 200_000:  # FAISS's guidance: 4 sqrt(n) lists, 256 training points per list
            nlist = 2 ** round(np.log2(4 * np.sqrt(pool)))
            report["indexes"] = measure(pool, 5 * CHUNK, [
                "Flat", f"IVF{nlist},Flat", f"IVF{nlist},PQ48", f"IVF{nlist},PQ48,Refine(SQ8)",
                f"OPQ48,IVF{nlist},PQ48", "HNSW32"],
                sweeps={"IVF": [4, 8, 16, 32, 64, 128], "HNSW": [64, 128, 200, 400]})
        else:  # what 2 cores allow: sqrt(n) lists trained on 100k vectors, two query chunks
            nlist = 2 ** round(np.log2(np.sqrt(pool)))
            report["indexes"] = measure(pool, 2 * CHUNK, [
                "Flat", f"IVF{nlist},Flat", f"IVF{nlist},PQ48", f"IVF{nlist},PQ48,Refine(SQ8)",
                f"OPQ48,IVF{nlist},PQ48", "HNSW32"], train_size=100_000,
                sweeps={"IVF": [4, 8, 16, 32, 64], "HNSW": [64, 128, 200, 400]})
        os.makedirs(os.path.join("out", "bench-retrieve"), exist_ok=True)
        with open(os.path.join("out", "bench-retrieve", f"pool-{pool}.json"), "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1)
        save(f"bench_retrieve_{pool}", report, "make bench-retrieve")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [100_000, 1_000_000])
