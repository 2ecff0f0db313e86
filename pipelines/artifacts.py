"""The on-disk layout of a run and the atomic publication of each stage's directory.

A stage writes into `<final>.tmp-<pid>` and renames it into place only when complete, so a crash never leaves
a half-written artifact that a later stage would read. `stage.json` records what the stage was run with, so an
unchanged stage is skipped on a rerun.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from typing import Any, Iterator

import pyarrow.parquet as pq

from judgemine.schemas import list_parts


class MissingArtifact(FileNotFoundError):
    """A stage was asked to run before a stage it reads from."""


def stage_dir(output: str, stage: str) -> str:
    return os.path.join(output, "stages", stage)


def require_stage(output: str, stage: str) -> dict[str, Any]:
    """The stage.json of a completed stage, or a clear error naming the command that makes it."""
    path = os.path.join(stage_dir(output, stage), "stage.json")
    if not os.path.exists(path):
        raise MissingArtifact(f"{stage_dir(output, stage)} is missing or incomplete: run `judgemine {stage}` "
                              f"(or `judgemine run`) with --output {output} first")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def count_rows(directory: str) -> int:
    """Rows in a directory's part files, from their footers."""
    return sum(pq.ParquetFile(p).metadata.num_rows for p in list_parts(directory))


@contextlib.contextmanager
def atomic_dir(final: str) -> Iterator[str]:
    """Yields a fresh temporary directory that replaces `final` only if the block completes."""
    parent = os.path.dirname(os.path.abspath(final))
    os.makedirs(parent, exist_ok=True)
    tmp = f"{final}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = f"{final}.old-{os.getpid()}"
    if os.path.exists(final):
        os.rename(final, old)
    os.rename(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def write_json(path: str, payload: dict[str, Any]) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=2, sort_keys=True, default=str)
        f.write("\n")
    os.replace(tmp, path)


def chain_fingerprint(*parts: str) -> str:
    """A stage's fingerprint from its upstream stages' and its own settings' and inputs'."""
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def write_stage_record(directory: str, stage: str, fingerprint: str, started: float,
                       counts: dict[str, Any], **extra: Any) -> dict[str, Any]:
    record = {"stage": stage, "fingerprint": fingerprint, "seconds": round(time.time() - started, 3),
              "counts": counts, **extra}
    write_json(os.path.join(directory, "stage.json"), record)
    return record
