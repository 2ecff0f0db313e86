"""Outputs made from a committed run (the report, exports): each carries the commit it was made from, in
OUTPUT/derived/<id>.json, so `status` lists the ones a later run made stale. A run that commits new shards removes
the old report first: a report is rewritten by the run (the default) or absent, never left looking current."""
from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Literal

from judgemine.schemas import storage
from judgemine.schemas.commits import commit_id, read_record
from judgemine.schemas.digests import file_digest
from judgemine.schemas.layout import RunLayout

Kind = Literal["report", "export"]
log = logging.getLogger(__name__)


def run_commit(output: str) -> str:
    """The commit of the run's shards (its mine stage), or "" when there is none."""
    record = read_record(output, "mine")
    return commit_id(record) if record else ""


def note_derived(output: str, path: str, kind: Kind, commit: str) -> None:
    """Records that `path` was made from the run's commit `commit`, with its content (an export another run or a
    hand later overwrote is told from this one). On a run that cannot be written (a read-only file system, a
    shared copy) nothing is recorded: one warning says so, and the export or report itself stands."""
    where = path if storage.is_remote(path) else os.path.abspath(path)
    if not storage.is_remote(output) and where.startswith(os.path.abspath(output) + os.sep):
        where = os.path.relpath(where, output)  # inside the run: it moves with the run's folder
    name = hashlib.sha256(where.encode()).hexdigest()[:16]
    content = file_digest(path) if storage.is_file(path) else ""
    try:
        storage.write_text(RunLayout(output).derived_note(f"{name}.json"),
                           json.dumps({"path": where, "kind": kind, "commit": commit, "sha256": content}))
    except OSError as e:
        log.warning("%s is not writable (%s): status will not list this %s", output, e.strerror or e, kind)


def derived_status(output: str) -> list[str]:
    """One line per report or export made from this run that still exists: up to date, or stale."""
    current, lines = run_commit(output), []
    layout = RunLayout(output)
    for name in storage.children(layout.derived):
        try:
            note = json.loads(storage.read_text(layout.derived_note(name)))
        except (OSError, ValueError):
            continue
        path = note["path"] if os.path.isabs(note["path"]) or storage.is_remote(note["path"]) else \
            layout.path(note["path"])
        if not storage.is_file(path):
            continue
        again = "`judgemine report`" if note["kind"] == "report" else "export again"
        if note["commit"] != current:
            state = f"stale       ({path} was made from an earlier run: {again})"
        elif note.get("sha256") and note["kind"] == "export" and file_digest(path) != note["sha256"]:
            state = f"stale       ({path} was overwritten since this run exported it: {again})"
        else:
            state = "up to date"
        lines.append(f"{note['kind']:9s} {state}" + (f"  ({path})" if state == "up to date" else ""))
    return sorted(lines)


def drop_report(output: str) -> None:
    """The report of the shards a commit replaces."""
    storage.remove(RunLayout(output).report)
