"""Paths of a run on any filesystem Beam knows: the local disk through os calls (renames, flock: what the
commit and the lock rely on there), object stores (s3://, gs://) through Beam's FileSystems, which have no
directories, no rename and no append: a "folder" is a key prefix, a move is a copy and a delete, and an object
appears whole when its upload completes (pipelines/run/commit.py builds the commit on that).

Beam is imported where it is used: a trainer reading shards imports schemas/ without it."""
from __future__ import annotations

import hashlib
import os
import shutil
import sys
from typing import IO, Any

from judgemine.schemas import s3_clients

if "apache_beam" in sys.modules:  # a Beam worker unpickling judgemine's steps: Beam's own S3 calls share too
    s3_clients.share()


def is_remote(path: str) -> bool:
    """An object-store path (any `scheme://` except file://)."""
    return "://" in path and not path.startswith("file://")


def _fs() -> Any:
    from apache_beam.io.filesystems import FileSystems
    s3_clients.share()
    return FileSystems


def _under(prefix: str) -> str:
    """A folder's key prefix: `out/stages/ingest/`, so `out/stages/ingest.tmp-7/` is not under it."""
    return prefix.rstrip("/") + "/"


def files(top: str) -> dict[str, int]:
    """{path: size} of every file under `top` (at any depth), or of `top` itself when it is a file; {} when
    nothing is there."""
    if not is_remote(top):
        if os.path.isfile(top):
            return {top: os.path.getsize(top)}
        return {os.path.join(folder, name): os.path.getsize(os.path.join(folder, name))
                for folder, _, names in os.walk(top) for name in names}
    fs = _fs()
    if fs.exists(top):
        return {top: fs.match([top])[0].metadata_list[0].size_in_bytes}
    found = fs.match([_under(top) + "**"])[0].metadata_list
    return {m.path: m.size_in_bytes for m in found}


def children(folder: str) -> list[str]:
    """The names directly under a folder (files and subfolders), sorted; [] when it is absent."""
    if not is_remote(folder):
        return sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    base = _under(folder)
    return sorted({path[len(base):].split("/", 1)[0] for path in files(folder)})


def exists(path: str) -> bool:
    """A file, or a folder with something in it (an object store has no empty folders)."""
    if not is_remote(path):
        return os.path.exists(path)
    return bool(files(path))


def is_file(path: str) -> bool:
    return os.path.isfile(path) if not is_remote(path) else _fs().exists(path)


def make_dirs(path: str) -> None:
    """A local folder and its parents; nothing to do on an object store."""
    if not is_remote(path):
        os.makedirs(path, exist_ok=True)


def remove(path: str) -> None:
    """A file or a whole folder; nothing when absent."""
    if not is_remote(path):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.lexists(path):
            os.remove(path)
        return
    doomed = sorted(files(path))
    if doomed:
        _fs().delete(doomed)


def move(src: str, dst: str) -> None:
    """A file or folder to a new path that must not exist: one rename on the local disk; on an object store a
    server-side copy of each object, then the deletes, so a kill part way leaves both partly there."""
    if not is_remote(src):
        os.rename(src, dst)
        return
    sources = sorted(files(src))
    _fs().rename(sources, [dst + s[len(src):] for s in sources])


def copy_file(src: str, dst: str) -> None:
    if not is_remote(src) and not is_remote(dst):
        make_dirs(os.path.dirname(os.path.abspath(dst)))
        shutil.copyfile(src, dst)
        return
    _fs().copy([src], [dst])


def read_bytes(path: str) -> bytes:
    if not is_remote(path):
        with open(path, "rb") as f:
            return f.read()
    with _fs().open(path, compression_type="uncompressed") as f:
        return f.read()


def read_text(path: str) -> str:
    return read_bytes(path).decode("utf-8")


def write_bytes(path: str, data: bytes) -> None:
    """Appears whole or not at all: a local file is written under a temporary name and renamed; an object
    becomes visible only when its upload completes. Inside a stage's temporary folder its digest is left beside
    it for the commit (schemas/digests.py)."""
    if is_remote(path):
        with _fs().create(path, compression_type="uncompressed") as f:
            f.write(data)
    else:
        make_dirs(os.path.dirname(os.path.abspath(path)))
        tmp = f"{path}.tmp-{os.getpid()}"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    from judgemine.schemas import digests
    if digests.within_temporary(path):
        digests.note_written(path, hashlib.sha256(data).hexdigest())


def open_write(path: str) -> IO[bytes]:
    """A new binary file (its folder made when local). An object store publishes it when it is closed,
    error or not: write under a temporary name and `move` it when whole."""
    if is_remote(path):
        return _fs().create(path, compression_type="uncompressed")
    make_dirs(os.path.dirname(os.path.abspath(path)))
    return open(path, "wb")


def write_text(path: str, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def relative(path: str, base: str) -> str:
    """`path` relative to the folder `base` (string-wise, so object-store paths work too)."""
    if not is_remote(base):
        return os.path.relpath(path, base)
    prefix = _under(base)
    if not path.startswith(prefix):
        raise ValueError(f"{path} is not under {base}")
    return path[len(prefix):]
