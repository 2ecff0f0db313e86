"""One boto3 client per process and S3 settings for Beam's S3 filesystem.

Beam's S3 filesystem builds a new boto3 session and client for every call it makes (open, match, exists, delete:
apache_beam/io/aws/clients/s3/boto3_client.py), and each build parses botocore's JSON service models again: 0.2 s
of CPU a call, 80% of a demo stage's time on a local S3 server. Sharing the client is safe (boto3 clients are
thread-safe; Beam's wrapper keeps its own per-download state) and changes no request.
"""
from __future__ import annotations

import os
import threading
from types import SimpleNamespace
from typing import Any

_lock = threading.Lock()
_clients: dict[tuple[Any, ...], Any] = {}


class _SharedSession:
    """Stands in for `boto3.session.Session()` inside Beam's S3 client wrapper: `client(...)` returns the one
    client this process made with the same arguments (credentials included, kept in memory only)."""

    def __init__(self, boto3: Any) -> None:
        self._boto3 = boto3

    def client(self, **kwargs: Any) -> Any:
        key = (os.getpid(), *sorted(kwargs.items()))  # a forked child makes its own (connection pools)
        with _lock:
            if key not in _clients:
                _clients[key] = self._boto3.session.Session().client(**kwargs)
            return _clients[key]


class _Boto3:
    """The `boto3` name Beam's wrapper module sees: only `boto3.session.Session` is used there."""

    def __init__(self, boto3: Any) -> None:
        self.session = SimpleNamespace(Session=lambda: _SharedSession(boto3))


def share() -> None:
    """Installs the shared client in this process (once; nothing when Beam's S3 support is not installed)."""
    try:
        from apache_beam.io.aws.clients.s3 import boto3_client
    except ImportError:
        return
    if boto3_client.boto3 is not None and not isinstance(boto3_client.boto3, _Boto3):
        boto3_client.boto3 = _Boto3(boto3_client.boto3)
