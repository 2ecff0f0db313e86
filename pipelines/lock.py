"""One run at a time per output directory: an advisory lock (flock) on OUTPUT/.judgemine.lock, held by the
live process. The kernel releases it when its holder dies, however it dies, so a killed run never leaves the
output stuck; the file names the holder for the message a second run gets."""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from typing import Iterator

LOCK_NAME = ".judgemine.lock"


class OutputLocked(RuntimeError):
    """Another live run holds the output directory."""


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:
        return "holder unknown"
    return (f"pid {info.get('pid')} on {info.get('host')}, `{info.get('command')}`, since "
            f"{info.get('since')}")


@contextlib.contextmanager
def run_lock(output: str, command: str) -> Iterator[None]:
    """Holds the output's lock for the block, or raises OutputLocked naming the live holder."""
    os.makedirs(output, exist_ok=True)
    fd = os.open(os.path.join(output, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputLocked(f"{output} is in use by another judgemine run ({_holder(fd)}): wait for it to "
                               "end, or use another --output") from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(["judgemine", command]),
                "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "argv": sys.argv[1:]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        yield
    finally:
        os.close(fd)
