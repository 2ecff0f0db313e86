"""make bench-peer: judgemine side by side with the tool most teams mine hard negatives with today,
sentence-transformers' `mine_hard_negatives`, on 20,000 real (gloss -> headword) pairs from GCIDE with a
separate 11,000-headword corpus (testing/peer_data.py), the same all-MiniLM-L6-v2 weights, batch size 64, K = 50,
m = 10, NV-Retriever's TopK-PercPos rule (relative margin 0.05, top sampling).

Each side runs as its own process from the raw files to its written output, alternating, back to back, on
this machine; wall time by the clock, peak memory (max RSS) from the kernel (wait4). Median of the rounds.
Then the chosen negatives are compared per pair (the pairs both sides kept)."""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from typing import Any

import pyarrow.parquet as pq

from bench.harness import save

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "out", "bench-peer")
BATCH, TOP_K, M = 64, 50, 10


def _ensure_dictionary() -> None:
    from judgemine.testing.peer_data import DICT
    if not os.path.exists(DICT):
        print("installing Debian's dict-gcide (the benchmark's real text) ...", flush=True)
        done = subprocess.run(["apt-get", "install", "-y", "-q", "dict-gcide"], capture_output=True, text=True)
        if done.returncode != 0 or not os.path.exists(DICT):
            raise SystemExit(f"bench-peer needs {DICT}: `apt-get install dict-gcide` failed: "
                             f"{done.stderr.strip()[-300:]}")


def _timed(cmd: list[str], log: str, env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MiB of the process and the children it waited for, stdout)."""
    with open(log, "w") as err:
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT,
                                env={**(env or os.environ), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
        out = proc.stdout.read() if proc.stdout else ""
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} ... failed ({proc.returncode}); see {log}")
    return wall, usage.ru_maxrss / 1024, out


def _overlap(peer_file: str, run_dir: str) -> dict[str, Any]:
    """Per (query, positive) pair both sides kept: the share of the peer's 10 negatives judgemine chose too."""
    peer = pq.read_table(peer_file).to_pylist()
    ours = {(r["query_text"], r["pos_text"]): r for r in pq.read_table(os.path.join(run_dir, "shards")).to_pylist()}
    shares, same = [], 0
    for row in peer:
        mine = ours.get((row["anchor"], row["positive"]))
        if mine is None:
            continue
        theirs = [row[f"negative_{i}"] for i in range(1, M + 1)]
        share = len(set(theirs) & set(mine["neg_texts"])) / M
        shares.append(share)
        same += theirs == mine["neg_texts"]
    repeated = sum(r["num_unique_negatives"] < M for r in ours.values())
    return {"pairs_peer_kept": len(peer), "pairs_judgemine_kept": len(ours), "pairs_compared": len(shares),
            "mean_overlap": round(statistics.fmean(shares), 4) if shares else None,
            "identical_lists": same, "judgemine_rows_with_repeats": repeated}


def main(rounds: int = 3, before: str = "") -> None:
    """`before`: a commit whose judgemine also runs each round (its own side, "judgemine@REV"), so a change's
    cost is a ratio measured in one session."""
    from bench.revisions import checkout, env_for
    from judgemine.pipelines.settings import Settings
    from judgemine.testing.peer_data import write
    _ensure_dictionary()
    pairs, corpus = write(os.path.join(WORK, "data"))
    model = Settings().resolved_embed_model
    judgemine = os.path.join(os.path.dirname(sys.executable), "judgemine")
    peer_out = os.path.join(WORK, "peer.parquet")
    run_dir = os.path.join(WORK, "judgemine")
    sides = {"judgemine": ""} | ({f"judgemine@{before}": checkout(before, WORK)} if before else {})
    results: dict[str, list[dict[str, Any]]] = {"peer": [], **{side: [] for side in sides}}
    for r in range(rounds):
        wall, rss, out = _timed([sys.executable, "-m", "bench.peer_run", pairs, corpus, peer_out, model, str(BATCH),
                                 str(TOP_K), str(M)], os.path.join(WORK, "peer.log"))
        results["peer"].append({"seconds": wall, "peak_mib": rss, **json.loads(out.strip().splitlines()[-1])})
        line = f"round {r + 1}: peer {wall:.1f} s {rss:.0f} MiB"
        for side, code in sides.items():
            shutil.rmtree(run_dir, ignore_errors=True)
            wall, rss, _ = _timed([judgemine, "run", "--pairs", pairs, "--corpus", corpus, "--output", run_dir,
                                   "--judge-backend", "similarity", "--relative-margin", "0.05", "--sampling", "top",
                                   "--num-negatives", str(M)], os.path.join(WORK, "judgemine.log"), env_for(code))
            with open(os.path.join(run_dir, "manifest.json"), encoding="utf-8") as f:
                manifest = json.load(f)
            stages = {name: s["seconds"] for name, s in manifest["stages"].items()}
            results[side].append({"seconds": wall, "peak_mib": rss, "stages": stages,
                                  "rows": sum(s["rows"] for s in manifest["shards"])})
            line += f" | {side} {wall:.1f} s {rss:.0f} MiB"
        print(line, flush=True)
    med = {side: {k: statistics.median(x[k] for x in runs) for k in ("seconds", "peak_mib")}
           for side, runs in results.items()}
    report = {"rounds": rounds, "cores": os.cpu_count(), "median": med,
              "time_ratio": round(med["judgemine"]["seconds"] / med["peer"]["seconds"], 3),
              "memory_ratio": round(med["judgemine"]["peak_mib"] / med["peer"]["peak_mib"], 3),
              **({"time_ratio_before": round(med[f"judgemine@{before}"]["seconds"] / med["peer"]["seconds"], 3),
                  "memory_ratio_before": round(med[f"judgemine@{before}"]["peak_mib"] / med["peer"]["peak_mib"], 3),
                  "now_over_before_per_round": [round(a["seconds"] / b["seconds"], 3) for a, b in
                                                zip(results["judgemine"], results[f"judgemine@{before}"])]}
                 if before else {}),
              "judgemine_stage_seconds": {k: round(statistics.median(x["stages"][k] for x in results["judgemine"]), 2)
                                          for k in results["judgemine"][0]["stages"]},
              "peer_phase_seconds": {k: round(statistics.median(x[k] for x in results["peer"]), 2)
                                     for k in ("load", "mine", "write")},
              "overlap": _overlap(peer_out, run_dir), "runs": results}
    with open(os.path.join(WORK, "results.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
    save("bench_peer", {k: v for k, v in report.items() if k != "runs"})


if __name__ == "__main__":
    args = sys.argv[1:]
    main(int(args[0]) if args and args[0].isdigit() else 3,
         args[args.index("--before") + 1] if "--before" in args else "")
