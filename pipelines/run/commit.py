"""How a stage's outputs become visible: written under temporary names, swapped into place, and committed by
its stage record, written last (docs/ARCHITECTURE.md, "Commit protocol").

The old record is removed before anything is swapped, so at every instant a stage is either committed (its
record lists every file it published, with sizes, and they are all there) or absent; whatever a killed run
left is not covered by a record, is invisible to readers, and is removed by the next run (under the run lock).

On an object store (s3://, gs://) there is no rename: the old folder's objects are deleted and the temporary
prefix's copied into place object by object (schemas/storage.py: move). A kill part way leaves a partial
folder, but no record covers it, so nothing trusts it, and the next run deletes it before copying again: the
record written last is the `_SUCCESS` of Hadoop and Spark, with every file's size in it.

`JUDGEMINE_FAULT_AT=<stage>:<step>` kills the process with SIGKILL at that step, for the crash tests;
`JUDGEMINE_FAULT_LOG=FILE` appends the name of every step passed, so the tests can list them.
"""
from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator

from judgemine.schemas import storage
from judgemine.schemas.digests import TEMPORARY
from judgemine.schemas.layout import RunLayout


def fault_point(name: str) -> None:
    """A named step of a commit: logged for the tests, and the process's death when asked for."""
    log = os.environ.get("JUDGEMINE_FAULT_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(name + "\n")
    if os.environ.get("JUDGEMINE_FAULT_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


@contextlib.contextmanager
def temporary_dir(final: str) -> Iterator[str]:
    """A fresh `<final>.tmp-<pid>`, removed if the block fails; `swap_in` publishes it."""
    tmp = f"{final}.tmp-{os.getpid()}"
    storage.remove(tmp)
    storage.make_dirs(tmp)
    try:
        yield tmp
    except BaseException:
        storage.remove(tmp)
        raise


def swap_in(tmp: str, final: str, step: str) -> None:
    """Replaces `final` by `tmp` (two renames, or on an object store a delete and a copy; the record, not
    this, is the commit point)."""
    remote, old = storage.is_remote(final), f"{final}.old-{os.getpid()}"
    if storage.exists(final):
        if remote:
            storage.remove(final)
        else:
            storage.move(final, old)
        fault_point(f"{step}:old-moved")
    storage.move(tmp, final)
    fault_point(f"{step}:new-in-place")
    storage.remove(old)


def leftovers(output: str) -> list[str]:
    """Every `*.tmp-PID` / `*.old-PID` a killed run left under OUTPUT (its top level, stages/ and each stage
    folder, report/ and export/; on an object store, every prefix down to a temporary name)."""
    if storage.is_remote(output):
        return _remote_leftovers(output)
    found, layout = [], RunLayout(output)
    for parent in layout.temporary_parents(storage.children(layout.stages)):
        found += [os.path.join(parent, name) for name in storage.children(parent) if TEMPORARY.search(name)]
    return found


def remove_leftovers(output: str) -> list[str]:
    """Removes what `leftovers` lists; call it only while holding the run lock."""
    found = leftovers(output)
    for path in found:
        storage.remove(path)
    return found


def _remote_leftovers(output: str) -> list[str]:
    """One listing of the run's objects."""
    doomed = set()
    for path in storage.files(output):
        parts = storage.relative(path, output).split("/")
        for i, part in enumerate(parts):
            if TEMPORARY.search(part):
                doomed.add(os.path.join(output, *parts[:i + 1]))
                break
    return sorted(doomed)
