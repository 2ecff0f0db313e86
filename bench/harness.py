"""What every benchmark shares: the median of repeated runs, and one JSON result per benchmark under
bench/results/, tagged with the date, the machine (CPU model, cores, memory, GPU), the core count and the commit,
so figures are compared only where they were measured alike. `python -m bench.results` writes the "Latest
results" block of bench/RESULTS.md from these files."""
from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results")


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def _gpu() -> str | None:
    try:
        import torch
        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        return None


def machine() -> dict[str, Any]:
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 0
    return {"cpu": _cpu(), "cores": os.cpu_count(), "memory_gib": round(pages / 2**30, 1), "gpu": _gpu(),
            "python": platform.python_version()}


def commit() -> str | None:
    """The checkout's commit, with "+dirty" when files differ from it (a figure from uncommitted code says so)."""
    try:
        head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def save(name: str, figures: dict[str, Any], command: str = "") -> str:
    """bench/results/<name>.json: the figures with when, where and from which commit they were measured; printed
    too. Returns the file's path."""
    result = {"bench": name, "command": command or f"make {name.replace('_', '-')}",
              "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
              "machine": machine(), "commit": commit(), "figures": figures}
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, f"{name}.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1, sort_keys=True, default=str)
        f.write("\n")
    print(json.dumps(result, indent=1, default=str), flush=True)
    return path
