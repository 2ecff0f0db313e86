"""manifest.json: what a run was given, what each stage did with it, and what it handed on."""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import os
import platform
import socket
import subprocess
from collections import Counter
from typing import Any

import numpy as np
import pyarrow.compute as pc
from apache_beam.options.pipeline_options import PipelineOptions

from judgemine import __version__
from judgemine.pipelines.run.artifacts import require_stage
from judgemine.pipelines.run.secrets import redacted
from judgemine.pipelines.settings import Settings, given
from judgemine.pipelines.stages import STAGES
from judgemine.schemas import SCHEMA_VERSION, SHARDS, list_parts, read_table, storage
from judgemine.schemas.layout import RunLayout
from judgemine.transforms.common.rejects import read_rejects, reason_counts

SETTING_NAMES = {"config", *(f.name for f in dataclasses.fields(Settings))}  # recorded as settings, not here
PACKAGES = ("judgemine", "apache-beam", "torch", "transformers", "sentence-transformers", "faiss-cpu", "pyarrow",
            "numpy")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def code_version() -> str | None:
    """The git commit of the judgemine checkout, when run from one."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        return subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def _stats(values: np.ndarray) -> dict[str, Any]:
    if values.size == 0:
        return {"count": 0}
    return {"count": int(values.size), "mean": float(values.mean()), "std": float(values.std()),
            "min": float(values.min()), "p50": float(np.median(values)), "max": float(values.max())}


def _sha256(path: str) -> str:
    return hashlib.sha256(storage.read_bytes(path)).hexdigest()


def _reasons(layout: RunLayout) -> dict[str, dict[str, int]]:
    """Rejects per stage and reason class, from OUTPUT/rejects/<stage>/, a part at a time."""
    out: dict[str, dict[str, int]] = {}
    for stage in STAGES:
        counts: Counter[str] = Counter()
        for part in read_rejects(layout.rejects_of(stage.name), ["reason"]):
            counts.update(reason_counts(part.column("reason").to_pylist()))
        if counts:
            out[stage.name] = dict(sorted(counts.items()))
    return out


def _accounting(stages: dict[str, dict[str, Any]], rows_out: int) -> dict[str, Any]:
    """Every pair row read is a shard row, a reject or a pair read again; every corpus row read is kept in the
    pool or a reject: from what each stage declares of its counts (pipelines/run/stage.py, `accounting`)."""
    pairs_in, repeated, rejected, corpus = 0, 0, {}, {"rows_in": 0, "kept": 0, "rejected": 0}
    for stage in STAGES:
        if stage.accounting:
            accounts = stage.accounting(stages[stage.name]["counts"])
            pairs_in += accounts.get("pairs_in", 0)
            repeated += accounts.get("repeated", 0)
            if "rejected" in accounts:
                rejected[stage.name] = accounts["rejected"]
            for k, v in accounts.get("corpus", {}).items():
                corpus[k] += v
    return {"pairs_in": pairs_in, "repeated_pairs": repeated, "rows_out": rows_out, "rejected": rejected,
            "corpus": corpus, "balanced": (pairs_in == rows_out + repeated + sum(rejected.values())
                                           and corpus["rows_in"] == corpus["kept"] + corpus["rejected"])}


def _merged(into: dict[str, Any], section: dict[str, Any]) -> dict[str, Any]:
    """`section` merged into `into`, dictionaries key by key (two stages may each add to `run.models`)."""
    for k, v in section.items():
        into[k] = _merged(dict(into[k]), v) if isinstance(v, dict) and isinstance(into.get(k), dict) else v
    return into


def _run(stages: dict[str, dict[str, Any]], settings: Settings, options: PipelineOptions | None) -> dict[str, Any]:
    """Where and how the run ran: host, device, runner options and the span of its stages (the models are the
    stages' own sections)."""
    from judgemine.transforms.common.devices import resolve_device
    starts = [r["started_at"] for r in stages.values() if "started_at" in r]
    ends = [r["ended_at"] for r in stages.values() if "ended_at" in r]
    return {"host": socket.gethostname(), "device": resolve_device(settings.device),
            "started_at": min(starts, default=None), "ended_at": max(ends, default=None),
            "runner_options": redacted({k: v for k, v in options.get_all_options(drop_default=True).items()
                                        if k not in SETTING_NAMES}) if options else None}


def build_manifest(settings: Settings, pending: dict[str, Any] | None = None,
                   options: PipelineOptions | None = None) -> dict[str, Any]:
    """From the committed stage records; `pending` is the record of the stage now committing (the last)."""
    out = settings.output
    stages = {s.name: pending if pending and pending["stage"] == s.name else require_stage(out, s.name)
              for s in STAGES}
    shards = []
    pos, neg, neg_all = [], [], []
    fallback_rows = 0
    for path in sorted(list_parts(RunLayout(out).shards)):
        table = read_table(path, SHARDS, ["pos_score", "neg_scores", "fallback"])
        shards.append({"path": storage.relative(path, out), "rows": table.num_rows, "sha256": _sha256(path)})
        pos.append(table.column("pos_score").to_numpy())
        real = table.filter(pc.invert(table.column("fallback")))
        neg.append(pc.list_flatten(real.column("neg_scores")).to_numpy())
        neg_all.append(pc.list_flatten(table.column("neg_scores")).to_numpy())
        fallback_rows += table.num_rows - real.num_rows
    rows_out = sum(s["rows"] for s in shards)
    manifest = {
        "schema_version": SCHEMA_VERSION, "prompt_version": settings.prompt.version, "code_version": code_version(),
        "versions": {"python": platform.python_version(), "judgemine_package": __version__,
                     **{p: _version(p) for p in PACKAGES}},
        "settings": redacted({**settings.to_dict(), "embed_model": settings.resolved_embed_model}),
        "run": _run(stages, settings, options),
        "stages": {s: {k: r[k] for k in ("seconds", "counts", "counters", "per_second", "started_at", "ended_at",
                                          "fingerprint") if k in r} for s, r in stages.items()},
        "accounting": _accounting(stages, rows_out),
        "rejects_by_reason": _reasons(RunLayout(out)),
        "scores": {"positive": _stats(np.concatenate(pos) if pos else np.zeros(0)),
                   "negative": _stats(np.concatenate(neg) if neg else np.zeros(0)),
                   "negative_in_shards": _stats(np.concatenate(neg_all) if neg_all else np.zeros(0)),
                   "fallback_rows": fallback_rows},
        "shards": shards,
    }
    for stage in STAGES:  # what each stage adds: the inputs, the models, the rule as applied
        if stage.manifest:
            _merged(manifest, stage.manifest(given(stage.name, settings), stages[stage.name]))
    return manifest
