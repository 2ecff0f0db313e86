"""How a stage's outputs become visible: written under temporary names, swapped into place, and committed by
its stage record, written last (docs/ARCHITECTURE.md, "Commit protocol").

The old record is removed before anything is swapped, so at every instant a stage is either committed (its
record lists every file it published, with sizes, and they are all there) or absent; whatever a killed run
left is not covered by a record, is invisible to readers, and is removed by the next run (under the run lock).

`JUDGEMINE_FAULT_AT=<stage>:<step>` kills the process with SIGKILL at that step, for the crash tests;
`JUDGEMINE_FAULT_LOG=FILE` appends the name of every step passed, so the tests can list them.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
from typing import Iterator

TEMPORARY = re.compile(r"\.(tmp|old)-\d+$")


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
    os.makedirs(os.path.dirname(os.path.abspath(final)), exist_ok=True)
    tmp = f"{final}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def swap_in(tmp: str, final: str, step: str) -> None:
    """Replaces `final` by `tmp` (two renames; the record, not this, is the commit point)."""
    old = f"{final}.old-{os.getpid()}"
    if os.path.exists(final):
        os.rename(final, old)
        fault_point(f"{step}:old-moved")
    os.rename(tmp, final)
    fault_point(f"{step}:new-in-place")
    shutil.rmtree(old, ignore_errors=True)


def remove_leftovers(output: str) -> list[str]:
    """Every `*.tmp-PID` / `*.old-PID` a killed run left under OUTPUT (its top level, stages/ and each stage
    folder, report/ and export/); call it only while holding the run lock."""
    removed = []
    for parent in (output, os.path.join(output, "stages"), *_children(os.path.join(output, "stages")),
                   os.path.join(output, "report"), os.path.join(output, "export")):
        for name in _listdir(parent):
            if TEMPORARY.search(name):
                path = os.path.join(parent, name)
                shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.remove(path)
                removed.append(path)
    return removed


def _listdir(path: str) -> list[str]:
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


def _children(path: str) -> list[str]:
    return [os.path.join(path, n) for n in _listdir(path) if os.path.isdir(os.path.join(path, n))]
