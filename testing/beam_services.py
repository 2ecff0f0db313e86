"""Beam's portable runner on loopback, as `make test-portable` and `make bench-portable` start it: the local job
service and external worker pools, each a process in its own group (killed with the SDK workers it started).
A pool starts each SDK worker with the `python` first on its PATH, so a pool is given the bin folder to put
first (the venv's, or one whose Python lacks Beam)."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

VENV_BIN = os.path.dirname(sys.executable)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(log: str, bin_first: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PATH": f"{bin_first}:{os.environ['PATH']}"}
    with open(log, "w") as f:
        return subprocess.Popen([sys.executable, "-m", *args], stdout=f, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)


def _wait_for_port(port: int, proc: subprocess.Popen, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the Beam service for port {port} exited ({proc.returncode})")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listens on port {port} after {seconds:.0f} s")


@contextlib.contextmanager
def beam_services(logs: str, pools: dict[str, str]) -> Iterator[dict[str, str]]:
    """A job service ("job") and one worker pool per name in `pools` (its bin folder to put first on PATH):
    {name: "localhost:PORT"}, plus {name + "_pid": pid} of each pool (its SDK workers are its children)."""
    os.makedirs(logs, exist_ok=True)
    ports = {"job": free_port(), **{name: free_port() for name in pools}}
    procs = {"job": _start(os.path.join(logs, "job.log"), VENV_BIN,
                           "apache_beam.runners.portability.local_job_service_main", "--port", str(ports["job"]))}
    for name, bin_first in pools.items():
        procs[name] = _start(os.path.join(logs, f"pool-{name}.log"), bin_first,
                             "apache_beam.runners.worker.worker_pool_main", "--service_port", str(ports[name]))
    try:
        for name, proc in procs.items():
            _wait_for_port(ports[name], proc)
        yield ({name: f"localhost:{port}" for name, port in ports.items()}
               | {f"{name}_pid": str(procs[name].pid) for name in pools})
    finally:
        for proc in procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def portable_args(services: dict[str, str], pool: str) -> list[str]:
    """The Beam options that send a command's stages to the job service, run by `pool`'s workers."""
    return ["--runner", "PortableRunner", "--job_endpoint", services["job"], "--environment_type", "EXTERNAL",
            "--environment_config", services[pool]]


def sdk_workers(pool_pid: int) -> list[int]:
    """The SDK worker processes a pool started (its children)."""
    found = subprocess.run(["pgrep", "-P", str(pool_pid)], capture_output=True, text=True).stdout.split()
    return [int(pid) for pid in found]
