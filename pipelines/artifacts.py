"""The on-disk layout of a run and each stage's record, `stages/<name>/stage.json`: its commit point
(pipelines/commit.py). The record says what the stage was run with (so an unchanged stage is skipped on a
rerun) and lists every file it published with its size (so a damaged stage is rebuilt, not trusted).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from typing import Any, Iterable

from judgemine.schemas import list_parts, num_rows, storage


class MissingArtifact(FileNotFoundError):
    """A stage was asked to run before a stage it reads from."""


class DamagedArtifact(MissingArtifact):
    """A committed stage whose published files are no longer what its record lists."""


def stage_dir(output: str, stage: str) -> str:
    return os.path.join(output, "stages", stage)


def record_path(output: str, stage: str) -> str:
    return os.path.join(stage_dir(output, stage), "stage.json")


def require_stage(output: str, stage: str) -> dict[str, Any]:
    """The record of a committed stage whose files are all in place, or a clear error naming the command that
    makes it."""
    path = record_path(output, stage)
    if not storage.is_file(path):
        raise MissingArtifact(f"{stage_dir(output, stage)} is missing or incomplete: run `judgemine {stage}` "
                              f"(or `judgemine run`) with --output {output} first")
    record = json.loads(storage.read_text(path))
    damage = damaged_files(output, record)
    if damage:
        raise DamagedArtifact(f"{stage_dir(output, stage)} is damaged ({damage}): run `judgemine {stage}` (or "
                              f"`judgemine run`) with --output {output} to rebuild it")
    return record


def damaged_files(output: str, record: dict[str, Any]) -> str:
    """What differs between the files a record lists and the store ("" when nothing): one listing per
    outermost folder the record names (on an object store, a few list requests instead of one per file)."""
    listed = record.get("files", {})
    found: dict[str, int] = {}
    for top in _outermost(listed):
        found.update({storage.relative(p, output): n for p, n in storage.files(os.path.join(output, top)).items()})
    for rel, size in listed.items():
        if rel not in found:
            return f"{rel} is missing"
        if found[rel] != size:
            return f"{rel} has {found[rel]} bytes, the record says {size}"
    return ""


def _outermost(paths: Iterable[str]) -> list[str]:
    """The folders holding the given relative paths, none inside another; a file at the top stands for
    itself (its folder is the whole run)."""
    folders = sorted({os.path.dirname(p) or p for p in paths})
    return [f for f in folders if not any(f.startswith(o + "/") for o in folders)]


def uncommit(output: str, stage: str) -> None:
    """Removes a stage's record: from here until its new record is written the stage does not exist."""
    storage.remove(record_path(output, stage))


def published_files(output: str, paths: Iterable[str]) -> dict[str, int]:
    """{path relative to OUTPUT: size} of every file under the given files and folders."""
    out: dict[str, int] = {}
    for top in paths:
        out.update({storage.relative(path, output): size for path, size in storage.files(top).items()})
    return dict(sorted(out.items()))


def count_rows(directory: str) -> int:
    """Rows in a directory's part files, from their footers."""
    return sum(num_rows(p) for p in list_parts(directory))


def write_json(path: str, payload: dict[str, Any]) -> None:
    """Appears whole or not at all (schemas/storage.py: write_bytes)."""
    storage.write_text(path, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def chain_fingerprint(*parts: str) -> str:
    """A stage's fingerprint from its upstream stages' and its own settings' and inputs'."""
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def stage_record(stage: str, fingerprint: str, started: float, counts: dict[str, Any], counters: dict[str, int],
                 throughput: str = "", **extra: Any) -> dict[str, Any]:
    """What the stage did: its counts, every Beam counter it raised, start and end (UTC), and the rate of its
    main count (`throughput`, per second)."""
    ended = time.time()
    seconds = round(ended - started, 3)
    record = {"stage": stage, "fingerprint": fingerprint, "seconds": seconds, "counts": counts,
              "counters": dict(sorted(counters.items())), "started_at": _utc(started), "ended_at": _utc(ended),
              **extra}
    if throughput and isinstance(counts.get(throughput), (int, float)):
        record["per_second"] = {throughput: round(counts[throughput] / max(seconds, 1e-9), 2)}
    return record


def _utc(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
