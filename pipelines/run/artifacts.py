"""The on-disk layout of a run and each stage's record, `stages/<name>/stage.json`: its commit point
(pipelines/run/commit.py). The record says what the stage was run with (so an unchanged stage is skipped on a
rerun) and lists every file it published with its size, sha256 and identity on disk (so a damaged stage is
rebuilt, not trusted). Files are named by their path inside the run and known by content alone (size, sha256),
never by inode or absolute path: a run copied, untarred or synced elsewhere is as valid as the original.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable
from typing import Any

from judgemine.schemas import list_parts, num_rows, storage
from judgemine.schemas.commits import damage, foreign, read_record
from judgemine.schemas.digests import remember, sha256_of
from judgemine.schemas.layout import RunLayout, owning_folder


class MissingArtifact(FileNotFoundError):
    """A stage was asked to run before a stage it reads from."""


class DamagedArtifact(MissingArtifact):
    """A committed stage whose published files are no longer what its record lists; `detail` names the file."""

    def __init__(self, message: str, detail: str) -> None:
        super().__init__(message)
        self.detail = detail


def require_stage(output: str, stage: str) -> dict[str, Any]:
    """The record of a committed stage whose files are all in place with the content it lists, or a clear
    error naming the command that makes it."""
    folder = RunLayout(output).stage(stage)
    if not storage.is_file(folder.record):
        raise MissingArtifact(f"{folder.path} is missing or incomplete: run `judgemine {stage}` "
                              f"(or `judgemine run`) with --output {output} first")
    record = json.loads(storage.read_text(folder.record))
    broken = damage(output, record) or _foreign_part(output, record, stage)
    if broken:
        raise DamagedArtifact(f"{folder.path} is damaged ({broken}): run `judgemine {stage}` (or "
                              f"`judgemine run`) with --output {output} to rebuild it", broken)
    return record


def _foreign_part(output: str, record: dict[str, Any], stage: str) -> str:
    """A part file in a stage's folder that its record does not list: the next stage, which reads the folder's
    parts, would read it, so it is damage, not a foreign file to ignore."""
    parts = [rel for rel in foreign(output, record, RunLayout("").stage(stage).path)
             if os.path.basename(rel).startswith("part-")]
    return f"{parts[0]} is not a file this stage wrote" if parts else ""


def foreign_files(output: str, stages: Iterable[str]) -> list[str]:
    """Files under the committed stages' folders (and the shards and rejects) that no record lists: readers
    ignore them (parts excepted: see _foreign_part); `status` names them."""
    found = []
    for stage in stages:
        record = read_record(output, stage)
        if record:
            folders = {owning_folder(rel) for rel in record["files"] if "/" in rel}
            found += [rel for folder in sorted(folders) for rel in foreign(output, record, folder)]
    return found


def uncommit(output: str, stage: str) -> None:
    """Removes a stage's record: from here until its new record is written the stage does not exist."""
    storage.remove(RunLayout(output).stage(stage).record)


def published_files(output: str, paths: Iterable[str], written: dict[str, str]) -> dict[str, dict[str, Any]]:
    """{path relative to OUTPUT: size and sha256} of every file under the given files and folders, after they
    are in place (their digests remembered by this disk's identities, schemas/digests.py: remember).
    `written`: the digests their writers computed (by final path); a file without one (a copy, a small JSON file
    published outside a stage folder) is read to get it."""
    out: dict[str, dict[str, Any]] = {}
    digests: dict[str, str] = {}
    for top in paths:
        for path, size in storage.files(top).items():
            digests[path] = written.get(path) or sha256_of(path)
            out[storage.relative(path, output)] = {"size": size, "sha256": digests[path]}
    remember(digests)
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
