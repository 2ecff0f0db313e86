"""What a reader trusts of a run: the files a committed stage's record lists (never a directory glob), checked
against the disk. Shared by the stages, `status`, the exports, the report and the trainer's ShardDataset, so it
imports neither Beam (on a local disk) nor pipelines/.

A record, `stages/<name>/stage.json`, lists every file the stage published as {path inside the run: {size,
sha256}}: content only, so a run moved, copied, untarred, synced or re-permissioned is as valid as the original.
Each file's sha256 is checked through the local digest index (schemas/digests.py): a file whose disk identity
the index knows costs a stat; any other (a copy, a rewrite) is read once and remembered under its new identity.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from typing import Any

from judgemine.schemas import storage
from judgemine.schemas.digests import file_digests, is_sidecar
from judgemine.schemas.layout import RunLayout


def read_record(output: str, stage: str) -> dict[str, Any] | None:
    """A stage's record, or None when it is not committed."""
    path = RunLayout(output).stage(stage).record
    if not storage.is_file(path):
        return None
    return json.loads(storage.read_text(path))


def damage(output: str, record: dict[str, Any]) -> str:
    """What differs between the files a record lists and the store ("" when nothing). On an object store: one
    listing per outermost folder, sizes compared (reading every object back would cost a download)."""
    listed = record.get("files", {})
    if any(not isinstance(entry, dict) for entry in listed.values()):
        return "recorded without checksums by an older judgemine"
    if storage.is_remote(output):
        found: dict[str, int] = {}
        for top in _outermost(listed):
            found.update({storage.relative(p, output): n for p, n in storage.files(os.path.join(output, top)).items()})
        sizes = {rel: found.get(rel) for rel in listed}
    else:
        sizes = {rel: _size(os.path.join(output, rel)) for rel in listed}
    for rel, entry in listed.items():
        if sizes[rel] is None:
            return f"{rel} is missing"
        if sizes[rel] != entry["size"]:
            return f"{rel} has {sizes[rel]} bytes, the record says {entry['size']}"
    if storage.is_remote(output):
        return ""
    digests = file_digests(os.path.join(output, rel) for rel in listed)  # a stat each where known on this disk
    for rel in listed:
        if digests[os.path.join(output, rel)] != listed[rel]["sha256"]:
            return f"{rel} has other content than the record's (same size, sha256 differs)"
    return ""


def _size(path: str) -> int | None:
    try:
        return os.stat(path).st_size if os.path.isfile(path) else None
    except OSError:
        return None


def _outermost(paths: Iterable[str]) -> list[str]:
    """The folders holding the given relative paths, none inside another; a file at the top stands for
    itself (its folder is the whole run)."""
    folders = sorted({os.path.dirname(p) or p for p in paths})
    return [f for f in folders if not any(f.startswith(o + "/") for o in folders)]


def commit_id(record: dict[str, Any]) -> str:
    """What a reader trusts of a stage: its fingerprint and the content of every file it published (a stage
    redone with the same settings but other bytes makes its readers stale)."""
    payload = record["fingerprint"] + "".join(f"|{rel}:{e['sha256']}" for rel, e in sorted(record["files"].items()))
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def listed_under(output: str, record: dict[str, Any], folder: str) -> list[str]:
    """The files of `folder` (relative to OUTPUT) that the record lists, in name order."""
    prefix = folder.strip("/") + "/"
    return [os.path.join(output, rel) for rel in sorted(record["files"]) if rel.startswith(prefix)]


def foreign(output: str, record: dict[str, Any], folder: str) -> list[str]:
    """Files under a committed folder that its record does not list (a user's file, another run's copy): readers
    ignore them; `status` names them."""
    listed = set(record["files"]) | {RunLayout("").stage(record["stage"]).record}
    top = os.path.join(output, folder)
    return sorted(rel for rel in (storage.relative(p, output) for p in storage.files(top))
                  if rel not in listed and not is_sidecar(os.path.basename(rel)))


def committed_shards(output: str) -> tuple[list[str], dict[str, Any]]:
    """The shard files of the committed mine stage as its record lists them, after checking them; ValueError
    names what is wrong (never committed, a rerun half-way, damage)."""
    record = read_record(output, "mine")
    if record is None:
        raise FileNotFoundError(f"{output} has no committed mine stage (never run, or a run stopped before it "
                                f"committed): run `judgemine run --output {output}`")
    broken = damage(output, record)
    if broken:
        raise ValueError(f"{RunLayout(output).shards} is damaged ({broken}): rerun `judgemine run`")
    return listed_under(output, record, RunLayout("").shards), record


def run_of(path: str) -> str | None:
    """The run directory when `path` is one or its shards/ folder (a run has stages/), else None (a folder of
    shard files copied elsewhere, read as it is). A local path is resolved first: `shards` from inside the run,
    or a link to a run's shards/, is that run."""
    path = path.rstrip("/") if storage.is_remote(path) else os.path.realpath(path)
    for output in (path, os.path.dirname(path)):
        if output and storage.exists(RunLayout(output).stages):
            return output
    return None
