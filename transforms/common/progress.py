"""Work done, reported from wherever a stage's DoFns run: each worker process keeps its count of the stage's units
(pairs, vectors, queries, rows) and a beat thread writes it, with a sequence number that grows every beat, into one
small file of its own in the stage's work folder every `BEAT_SECONDS` (`REMOTE_BEAT_SECONDS` on an object store,
where each beat is a request). The driver sums the files for the stage's progress line and watches the sequence
numbers to tell a live worker from a dead one (pipelines/run/progress.py). Files, not Beam metrics: every runner's
workers can write the run's storage, and no runner reports metrics while a job runs through the same API. The beat
stops when the driver removes its marker (the stage ended), so no file is written after the folder is gone."""
from __future__ import annotations

import os
import socket
import threading
import uuid
from dataclasses import dataclass

from judgemine.schemas import storage

BEAT_SECONDS = 2.0
REMOTE_BEAT_SECONDS = 10.0


def beat_seconds(folder: str) -> float:
    """How often a worker reports into `folder`: on an object store each report is a request or two."""
    return REMOTE_BEAT_SECONDS if storage.is_remote(folder) else BEAT_SECONDS


MARKER = "_watching"  # written by the driver when the stage starts, removed when it ends
SUFFIX = ".work"


def worker_name() -> str:
    """This process, as its work file names it: host and pid (the driver tells its own from the others')."""
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class StageWork:
    """Where a stage's workers report their units: given to the DoFns that do the stage's work (folder "" for
    code run outside a stage, e.g. `plan`'s samples: nothing is reported)."""
    folder: str = ""

    def started(self) -> None:
        """Called from a DoFn's setup: the worker is alive before its first unit is done (a model may take
        minutes to load)."""
        if self.folder:
            _beat(self.folder)

    def add(self, units: int) -> None:
        if self.folder:
            _beat(self.folder).add(units)


class _Beat:
    """One process's count for one stage, written by a daemon thread until the driver's marker is gone."""

    def __init__(self, folder: str) -> None:
        self.folder, self.units, self.seq = folder, 0, 0
        self.path = f"{folder.rstrip('/')}/{worker_name()}-{uuid.uuid4().hex[:8]}{SUFFIX}"
        self._lock = threading.Lock()
        threading.Thread(target=self._run, daemon=True, name="judgemine-work-beat").start()

    def add(self, units: int) -> None:
        with self._lock:
            self.units += units

    def _run(self) -> None:
        stop = threading.Event()
        while self._write():
            stop.wait(beat_seconds(self.folder))
        with _lock:
            _beats.pop(self.folder, None)

    def _write(self) -> bool:
        """Writes the count and the next sequence number; False once the stage has ended."""
        if not storage.exists(f"{self.folder.rstrip('/')}/{MARKER}"):
            return False
        with self._lock:
            self.seq += 1
            text = f"{self.units} {self.seq}\n"
        if storage.is_remote(self.path):
            storage.write_text(self.path, text)
            return True
        tmp = f"{self.path}.part"
        try:  # never creates the folder: once the driver removed it, nothing more is written
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, self.path)
        except FileNotFoundError:
            return False
        return True


_lock = threading.Lock()
_beats: dict[str, _Beat] = {}


def _beat(folder: str) -> _Beat:
    with _lock:
        if folder not in _beats:
            _beats[folder] = _Beat(folder)
        return _beats[folder]


def read_work(folder: str) -> dict[str, tuple[int, int]]:
    """{worker file name: (units, sequence)} of every worker that has reported into the folder."""
    out: dict[str, tuple[int, int]] = {}
    for path in storage.files(folder):
        name = path.rsplit("/", 1)[-1]
        if not name.endswith(SUFFIX):
            continue
        try:
            units, seq = storage.read_text(path).split()
            out[name] = (int(units), int(seq))
        except (OSError, ValueError):  # replaced or removed while listed: read at the next look
            continue
    return out


def human_seconds(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min" if seconds < 7200 else \
        f"{seconds / 3600:.1f} h"
