"""One run at a time per output directory, and no reader while it runs: an advisory lock (flock) on the output
folder itself, exclusive for a run, shared for readers (export, report, status). The kernel releases it when its
holder dies, however it dies, so a killed run never leaves the output stuck; and deleting a file cannot release
it (a lock on OUTPUT/.judgemine.lock was lost when an operator deleted that file). The file
OUTPUT/.judgemine.lock only names the holder, for the messages others get.

An object store has no flock: there the lock is a lease, the object OUTPUT/.judgemine.lock naming its holder
and renewed every LEASE_SECONDS / 4 by a thread of the live run. A lease not renewed for LEASE_SECONDS, or
whose holder is a process of this host that no longer exists, is stale and taken over. Beam's FileSystems
have no create-if-absent, so two runs starting within the same second could both take it: each re-reads the
lease after writing it, and before each stage's commit (`check_held`) a run that finds another's token in the
lease stops with OutputLocked instead of committing. Schedule one run per output (Airflow's max_active_runs=1)
as the first line of defence on object stores."""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any, Literal

from judgemine.pipelines.run.ownership import claim, is_ours
from judgemine.schemas import storage
from judgemine.schemas.layout import RunLayout

LEASE_SECONDS = 120.0
READER_WAIT_SECONDS = 10.0  # how long a run waits for readers (status, export, report) to let go
_held: dict[str, str] = {}  # output -> the token of the lease this process holds on it


class OutputLocked(RuntimeError):
    """Another live command holds the output directory; `holder` says which."""

    def __init__(self, message: str, holder: str = "") -> None:
        super().__init__(message)
        self.holder = holder


def _lock_folder(output: str, mode: int) -> int:
    """An fd of the output folder holding flock `mode`; BlockingIOError when a run (or, for a run, anyone) has it."""
    fd = os.open(output, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BaseException:
        os.close(fd)
        raise
    return fd


def holder(output: str) -> str:
    """Who holds the output, as the holder wrote it in OUTPUT/.judgemine.lock."""
    try:
        with open(RunLayout(output).lock, "rb") as f:
            info = json.loads(f.read(4096) or b"{}")
    except (OSError, ValueError):
        return "holder unknown"
    return f"pid {info.get('pid')} on {info.get('host')}, `{info.get('command')}`, since {info.get('since')}"


@contextlib.contextmanager
def run_lock(output: str, command: str) -> Iterator[None]:
    """Holds the output exclusively for the block, or raises OutputLocked naming the live holder. A folder that
    is not judgemine's is refused first (pipelines/run/ownership.py), with nothing written into it."""
    claim(output)
    if storage.is_remote(output):
        with _lease(output, command):
            yield
        return
    os.makedirs(output, exist_ok=True)
    waited = time.monotonic()
    while True:  # readers (a sensor's status, an export) hold it for moments: a run waits that long for them
        try:
            fd = _lock_folder(output, fcntl.LOCK_EX)
            break
        except BlockingIOError:
            who = _holder_kind(output)
            if who == "readers" and time.monotonic() - waited < READER_WAIT_SECONDS:
                time.sleep(0.2)
                continue
            raise OutputLocked({
                "run": f"{output} is in use by another judgemine run ({holder(output)})",
                "readers": f"{output} is read by an export, report or status for over {READER_WAIT_SECONDS:.0f} s",
                "unknown": f"{output} is in use by another judgemine run (its lock file "
                           f"{os.path.basename(RunLayout(output).lock)} was deleted; the lock is on the folder and "
                           "still held)"}[who] + ": wait for it to end, or use another --output",
                holder(output)) from None
    info = os.open(RunLayout(output).lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(info, fcntl.LOCK_EX)  # says "a run" to whoever finds the folder locked (readers lock no file)
        os.ftruncate(info, 0)
        os.pwrite(info, json.dumps(_holder_info(command)).encode(), 0)
        yield
    finally:
        os.close(info)
        os.close(fd)


def _holder_kind(output: str) -> Literal["run", "readers", "unknown"]:
    """Who holds the folder: a run (it also locks the holder file), readers (they lock no file), or unknown (the
    holder file was deleted)."""
    try:
        fd = os.open(RunLayout(output).lock, os.O_RDONLY)
    except OSError:
        return "unknown"
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return "readers"
    except BlockingIOError:
        return "run"
    finally:
        os.close(fd)


@contextlib.contextmanager
def read_lock(output: str) -> Iterator[None]:
    """Holds the output for reading (several readers at once, no run): a reader sees one committed state, never
    a rerun half-way. Raises OutputLocked while a run holds it. An object store has no shared lock: there a
    live lease refuses the read, and readers re-check the record they read by (pipelines/outputs/exports/base.py)."""
    if storage.is_remote(output):
        current = _read_lease(RunLayout(output).lock)
        if current and not _stale(current):
            raise OutputLocked(f"{output} is being written by a judgemine run ({_described(current)}): read it when "
                               "the run has ended", _described(current))
        yield
        return
    if not os.path.isdir(output):
        yield  # nothing to read: the reader says what is missing
        return
    if is_ours(output):  # the holder file, unlocked, tells a run that readers hold the folder (never in a user's)
        with contextlib.suppress(OSError):
            os.close(os.open(RunLayout(output).lock, os.O_RDONLY | os.O_CREAT, 0o644))
    try:
        fd = _lock_folder(output, fcntl.LOCK_SH)
    except BlockingIOError:
        raise OutputLocked(f"{output} is being written by a judgemine run ({holder(output)}): read it when the run "
                           "has ended", holder(output)) from None
    try:
        yield
    finally:
        os.close(fd)


def _holder_info(command: str) -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(["judgemine", command]),
            "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}  # the command, never its argv (it may hold a secret)


def _read_lease(path: str) -> dict[str, Any] | None:
    """The lease object, or None when absent or unreadable (then it is anyone's)."""
    try:
        return json.loads(storage.read_bytes(path) or b"{}")
    except Exception:  # noqa: BLE001 - a missing object raises each object store's own error class
        return None


def _stale(lease: dict[str, Any]) -> bool:
    """Not renewed within LEASE_SECONDS, or held by a process of this host that is gone."""
    if time.time() - float(lease.get("renewed", 0)) > LEASE_SECONDS:
        return True
    if lease.get("host") == socket.gethostname():
        try:
            os.kill(int(lease.get("pid", 0)), 0)
        except ProcessLookupError:
            return True
        except (PermissionError, ValueError):
            return False
    return False


def _described(lease: dict[str, Any]) -> str:
    age = time.time() - float(lease.get("renewed", 0))
    return (f"pid {lease.get('pid')} on {lease.get('host')}, `{lease.get('command')}`, since {lease.get('since')}, "
            f"lease renewed {age:.0f} s ago, stale after {LEASE_SECONDS:.0f} s")


@contextlib.contextmanager
def _lease(output: str, command: str) -> Iterator[None]:
    path = RunLayout(output).lock
    current = _read_lease(path)
    if current and not _stale(current):
        raise OutputLocked(f"{output} is in use by another judgemine run ({_described(current)}): wait for it "
                           "to end, or use another --output")
    token = uuid.uuid4().hex
    lease = {**_holder_info(command), "token": token}

    def renew() -> None:
        storage.write_text(path, json.dumps({**lease, "renewed": time.time()}))

    renew()
    _held[output] = token
    check_held(output)
    stop = threading.Event()

    def keep() -> None:
        while not stop.wait(LEASE_SECONDS / 4):
            if (_read_lease(path) or {}).get("token") != token:
                return  # taken over: check_held stops this run before its next commit
            renew()

    thread = threading.Thread(target=keep, daemon=True, name="judgemine-lease")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        _held.pop(output, None)
        if (_read_lease(path) or {}).get("token") == token:
            storage.remove(path)


def check_held(output: str) -> None:
    """Raises OutputLocked when this process's lease on an object-store output was taken by another run
    (a no-op on local outputs, where flock cannot be taken over)."""
    token = _held.get(output)
    if token is None:
        return
    lease = _read_lease(RunLayout(output).lock) or {}
    if lease.get("token") != token:
        raise OutputLocked(f"{output}: another judgemine run took this run's lease ({_described(lease)}); "
                           "stopping before the commit")
