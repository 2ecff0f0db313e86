"""make bench-provenance: what identity by content and verified reads cost.

1. Identifying a model folder (the content id in the judge's fingerprint and score-cache keys): the first time
   (every file read and hashed, the digest index empty) and on a rerun (the index knows every file's identity),
   each in a fresh process, median of ROUNDS. MODEL= a folder (default: the real judge that
   `make test-real` builds, 2.5 GB: testing/real_models.py), else a synthetic 2 GiB folder.
2. `judgemine status` on a committed run of N real pairs (GCIDE + WordNet, the similarity judge, every default):
   as committed (every file's identity known to the digest index: stats only), and after the run folder is copied
   (other inodes: every file hashed once, then remembered), median of ROUNDS. Then the trainer's ShardDataset on
   copies made by cp -r, tar and rsync -a (the hand-off to a training cluster): first (every shard read and
   checked against the record), again (remembered), and on the original run (the baseline).

Usage: python -m bench.bench_provenance [--pairs N] [--rounds R] [--model DIR]; prints one JSON object.
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from bench.harness import save
from judgemine.testing.real_models import FOLDER

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "out", "bench-provenance")
JUDGEMINE = os.path.join(os.path.dirname(sys.executable), "judgemine")
REAL_JUDGE = os.path.join(FOLDER, "judge")


def _timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    t0 = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if done.returncode not in (0, 3):
        raise SystemExit(f"{cmd[:3]} failed ({done.returncode}): {done.stderr[-1000:]}")
    return time.monotonic() - t0, done.stdout


def _drop_page_cache() -> bool:
    """A first read from disk, where this process may drop the kernel's page cache (root, not in a container)."""
    subprocess.run(["sync"], check=True)
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def _folder_size(folder: str) -> int:
    return sum(os.path.getsize(os.path.join(d, n)) for d, _, names in os.walk(folder) for n in names)


def model_identity(model: str, rounds: int) -> dict[str, float | int | str]:
    """Seconds to a model folder's content id in a fresh process: the index empty, then warm."""
    code = (f"import time; t=time.monotonic(); from judgemine.schemas.digests import model_id; "
            f"model_id({model!r}, 'float32'); print(time.monotonic() - t)")
    first, again = [], []
    for _ in range(rounds):
        index = tempfile.mktemp(prefix="digests-", suffix=".json")
        env = {"JUDGEMINE_DIGEST_INDEX": index}
        cold = _drop_page_cache()
        first.append(float(_timed([sys.executable, "-c", code], env)[1]))
        again.append(float(_timed([sys.executable, "-c", code], env)[1]))
        os.remove(index)
    size = _folder_size(model)
    return {"model": model, "gib": round(size / 2**30, 2), "page_cache_dropped": cold,
            "first_s": round(statistics.median(first), 3),
            "first_gib_per_s": round(size / 2**30 / statistics.median(first), 2),
            "rerun_s": round(statistics.median(again), 4), "rounds": rounds}


def _synthetic_model() -> str:
    folder = os.path.join(WORK, "synthetic-model")
    if not os.path.exists(os.path.join(folder, "model.safetensors")):
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "model.safetensors"), "wb") as f:
            for _ in range(2048):
                f.write(os.urandom(1 << 20))
        open(os.path.join(folder, "config.json"), "w").write("{}")
    return folder


def committed_run(n: int) -> tuple[str, list[str]]:
    """A committed run of n real pairs with the similarity judge (made once, kept under out/)."""
    from judgemine.testing.scale_data import pairs, write
    out = os.path.join(WORK, f"run-{n}")
    data = os.path.join(WORK, f"pairs-{n}.jsonl")
    if not os.path.exists(data):
        write(data, pairs()[:n])
    args = ["--output", out, "--pairs", data, "--judge-backend", "similarity"]
    if not os.path.exists(os.path.join(out, "manifest.json")):
        seconds, _ = _timed([JUDGEMINE, "run", *args, "--no-report"])
        print(json.dumps({"made_run": out, "seconds": round(seconds, 1)}), flush=True)
    return out, args


def status_times(n: int, rounds: int) -> dict[str, Any]:
    out, args = committed_run(n)
    files = sum(len(json.load(open(os.path.join(out, "stages", s, "stage.json")))["files"])
                for s in os.listdir(os.path.join(out, "stages")))
    size = _folder_size(out)
    committed = [_timed([JUDGEMINE, "status", *args])[0] for _ in range(rounds)]
    copy = out + "-copy"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(out, copy)
    copy_args = [copy if a == out else a for a in args]
    first = _timed([JUDGEMINE, "status", *copy_args])[0]
    warm = [_timed([JUDGEMINE, "status", *copy_args])[0] for _ in range(rounds)]
    shutil.rmtree(copy)
    loads = {how: _loader_times(out, how, rounds) for how in ("cp -r", "tar", "rsync -a")}
    baseline = [_timed([JUDGEMINE, "--version"])[0] for _ in range(rounds)]  # the process's start alone
    return {"pairs": n, "files": files, "gib": round(size / 2**30, 2),
            "status_committed_s": round(statistics.median(committed), 2),
            "status_copied_first_s": round(first, 2), "status_copied_again_s": round(statistics.median(warm), 2),
            "process_start_s": round(statistics.median(baseline), 2), "rounds": rounds,
            "shard_dataset_on_a_copy": loads}


LOADER = ("import sys, time; t = time.monotonic(); from judgemine.schemas.shard_dataset import ShardDataset; "
          "ShardDataset(sys.argv[1]); print(time.monotonic() - t)")


def _loader_times(run: str, how: str, rounds: int) -> dict[str, float]:
    """The trainer's loader made on a copy of the run (the hand-off to a training cluster), in a fresh process:
    the first time every shard is read and hashed against the record, then remembered (a stat each). Median of
    ROUNDS fresh copies; the loader on the original run is the baseline."""
    first, again = [], []
    for _ in range(rounds):
        copy = run + "-handed-over"
        shutil.rmtree(copy, ignore_errors=True)
        if how == "tar":
            subprocess.run(f"tar -C {os.path.dirname(run)} -cf - {os.path.basename(run)} | "
                           f"(mkdir -p {copy} && tar -C {copy} --strip-components=1 -xf -)", shell=True, check=True)
        elif how.startswith("rsync"):
            subprocess.run(["rsync", "-a", run + "/", copy + "/"], check=True)
        else:
            subprocess.run(["cp", "-r", run, copy], check=True)
        first.append(float(_timed([sys.executable, "-c", LOADER, copy])[1]))
        again.append(float(_timed([sys.executable, "-c", LOADER, copy])[1]))
        shutil.rmtree(copy)
    original = [float(_timed([sys.executable, "-c", LOADER, run])[1]) for _ in range(rounds)]
    return {"original_s": round(statistics.median(original), 3), "copy_first_s": round(statistics.median(first), 3),
            "copy_again_s": round(statistics.median(again), 3)}


def main(argv: list[str]) -> None:
    n = int(argv[argv.index("--pairs") + 1]) if "--pairs" in argv else 100_000
    rounds = int(argv[argv.index("--rounds") + 1]) if "--rounds" in argv else 5
    model = argv[argv.index("--model") + 1] if "--model" in argv else (
        REAL_JUDGE if os.path.exists(os.path.join(REAL_JUDGE, "model.safetensors")) else "")
    os.makedirs(WORK, exist_ok=True)
    save("bench_provenance", {"model_identity": model_identity(model or _synthetic_model(), rounds),
                              "status": status_times(n, rounds)})


if __name__ == "__main__":
    main(sys.argv[1:])
