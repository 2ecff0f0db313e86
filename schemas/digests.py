"""What a file or a folder *is*, by content: sha256 digests.

- A digest a writer computed as it wrote a file (`DigestingStream`) is left beside it in a hidden sidecar
  (`.<name>.sha256`), which the commit gathers into the stage's record (`take_written`): no file is read back
  to be listed.
- A file that is hashed (a model's weights, an image, a copied file) is remembered by its identity on disk
  (device, inode, size, mtime, ctime) in a small local index, so a 15 GB model folder is read once, not on
  every run. ctime cannot be set from user space: a file changed in place, replaced, or copied has another
  identity and is hashed again. A file changed within RACY_SECONDS of being hashed is not remembered (two
  changes inside one timestamp tick would look alike: git's "racy clean" rule).

Imports neither Beam nor torch: the GPU scripts and trainers import it.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Iterable
from typing import IO, Any

from judgemine.schemas import storage

SIDECAR_SUFFIX = ".sha256"
RACY_SECONDS = 2.0
_INDEX_ENV = "JUDGEMINE_DIGEST_INDEX"  # where the index lives; default ~/.cache/judgemine/digests.json
TEMPORARY = re.compile(r"\.(tmp|old)-\d+$")  # a killed run's leftover, or a stage's folder before its commit
_lock = threading.Lock()
_memo: dict[str, list[Any]] | None = None


def index_path() -> str:
    return os.environ.get(_INDEX_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "judgemine", "digests.json")


def identity(path: str) -> list[int]:
    """A local file's identity on disk: [device, inode, size, mtime_ns, ctime_ns]."""
    st = os.stat(path)
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def sha256_of(path: str) -> str:
    """Reads the whole file (any filesystem)."""
    h = hashlib.sha256()
    if storage.is_remote(path):
        h.update(storage.read_bytes(path))
        return h.hexdigest()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _load() -> dict[str, list[Any]]:
    global _memo
    if _memo is None:
        try:
            with open(index_path(), encoding="utf-8") as f:
                _memo = json.load(f)
        except (OSError, ValueError):  # absent, unreadable or damaged: it is only a cache
            _memo = {}
    return _memo


def _save(new: dict[str, list[Any]]) -> None:
    """Merges this process's new entries into the index on disk (whole or not at all). Entries of files that are
    gone (runs deleted, temporary folders) are dropped: every commit remembers its files, and the index would
    otherwise grow with every run ever made."""
    path = index_path()
    try:
        with open(path, encoding="utf-8") as f:
            merged = {k: v for k, v in json.load(f).items() if os.path.exists(k)}
    except (OSError, ValueError, AttributeError):
        merged = {}
    merged.update(new)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(merged, f)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home: digests are then computed on every run, still correct


def file_digest(path: str) -> str:
    """sha256 of a file, from the index when its identity is unchanged since it was hashed."""
    if storage.is_remote(path):
        return sha256_of(path)
    return file_digests([path])[path]


def file_digests(paths: Iterable[str]) -> dict[str, str]:
    """sha256 of local files, each read only when the index does not know its current identity."""
    out: dict[str, str] = {}
    new: dict[str, list[Any]] = {}
    with _lock:
        memo = _load()
        for path in paths:
            key = os.path.realpath(path)
            ident = identity(path)
            known = memo.get(key)
            if known and known[0] == ident:
                out[path] = known[1]
                continue
            digest = sha256_of(path)
            out[path] = digest
            if time.time() - ident[3] / 1e9 > RACY_SECONDS:
                memo[key] = new[key] = [ident, digest]
        if new:
            _save(new)
    return out


def remember(digests: dict[str, str]) -> None:
    """Digests a writer computed of files it just published, remembered by their identity now: a reader on this
    disk then trusts them by a stat, and a copy (another disk identity) is read once and remembered in turn."""
    local = {path: digest for path, digest in digests.items() if not storage.is_remote(path)}
    if not local:
        return
    with _lock:
        memo = _load()
        new = {os.path.realpath(path): [identity(path), digest] for path, digest in local.items()}
        memo.update(new)
        _save(new)


def _visible_files(folder: str) -> list[str]:
    """Relative paths of a folder's files, hidden files and folders (a hub download's `.cache/`) left out.
    Symbolic links are followed, to files and to folders (a hub snapshot links every file; a model may link its
    `1_Pooling/`): what a loader reads through them is what is hashed. A link back to a folder already walked
    is not walked twice."""
    found = []
    seen: set[str] = set()
    for parent, subdirs, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(parent)
        if real in seen:
            subdirs[:] = []
            continue
        seen.add(real)
        subdirs[:] = [s for s in subdirs if not s.startswith(".")]
        found += [os.path.relpath(os.path.join(parent, n), folder) for n in names if not n.startswith(".")]
    return sorted(found)


def folder_digest(folder: str) -> str:
    """A folder's content id: the sha256 of every visible file's relative path and digest. The same weights
    under another path have the same id; other weights of the same size do not."""
    files = _visible_files(folder)
    digests = file_digests(os.path.join(folder, f) for f in files)
    payload = "\n".join(f"{f}\x00{digests[os.path.join(folder, f)]}" for f in files)
    return hashlib.sha256(payload.encode()).hexdigest()


def model_id(folder: str, dtype: str) -> str:
    """A model folder's content id with the dtype it runs in: in the fingerprints of the stages that use it and in
    the judge's score-cache keys. A missing folder stands for itself (a stage's check stops the run first)."""
    if not os.path.isdir(folder):
        return f"missing:{folder}"
    return hashlib.sha256(f"{folder_digest(folder)}\x00{dtype}".encode()).hexdigest()[:20]


def sidecar(path: str) -> str:
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}{SIDECAR_SUFFIX}")


def is_sidecar(name: str) -> bool:
    return name.startswith(".") and name.endswith(SIDECAR_SUFFIX)


class DigestingStream:
    """A writable binary stream that hashes what passes through it; `close` leaves the digest beside the file."""

    def __init__(self, raw: IO[bytes], path: str) -> None:
        self._raw, self._path, self._hash, self.closed = raw, path, hashlib.sha256(), False

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self._hash.update(view)
        self._raw.write(view)
        return view.nbytes

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        self._raw.flush()

    def tell(self) -> int:
        return self._raw.tell()

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
            self.closed = True
            note_written(self._path, self._hash.hexdigest())

    def __enter__(self) -> DigestingStream:
        return self

    def __exit__(self, kind: Any, *_: Any) -> None:
        if kind is None:
            self.close()
        else:
            self._raw.close()
            self.closed = True


def within_temporary(path: str) -> bool:
    """Under a stage's `<folder>.tmp-PID` (where written files get their digest beside them)."""
    return any(TEMPORARY.search(part) for part in path.replace("\\", "/").split("/")[:-1])


def note_written(path: str, digest: str) -> None:
    """The digest of a file just written, left beside it for the commit."""
    side = sidecar(path)
    if storage.is_remote(path):
        from apache_beam.io.filesystems import FileSystems
        with FileSystems.create(side, compression_type="uncompressed") as f:
            f.write(digest.encode())
        return
    with open(side, "w", encoding="ascii") as f:
        f.write(digest)


def take_written(folder: str) -> dict[str, str]:
    """{file path: digest} of the files under a (temporary) folder whose writers left one; the sidecars are
    removed, so a committed folder holds only its files."""
    out: dict[str, str] = {}
    for path in storage.files(folder):
        folder_of, name = os.path.split(path)
        if is_sidecar(name):
            out[os.path.join(folder_of, name[1:-len(SIDECAR_SUFFIX)])] = storage.read_text(path).strip()
            storage.remove(path)
    return out
