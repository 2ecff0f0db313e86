"""A content-addressed store of judge scores: a rerun judges only pairs it has never judged.

The key is the request itself: sha256 of the judge's identity (a model folder's content id with its dtype, or a
server's model as the server reports it: transforms/judge/base.py, `identity`), the prompt format as rendered
(prompt.py: `PromptFormat.identity`) and the exact payload of each side (the text as given and the image's bytes,
transforms/common/content.py: `payload_id`), never the case-folded content ids that deduplicate the pool. It
survives changes of beta, m, step, chunking and pool; any other model, dtype, prompt, text or picture is another
key. Scores are appended as one Parquet file per checkpoint (written to a temporary name, then renamed: at least every
--judge-checkpoint-seconds inside a chunk, transforms/judge/handler.py), so a judge killed halfway keeps what it
scored up to its last checkpoint.
"""
from __future__ import annotations

import hashlib
import logging
import os
import time
import uuid
from collections.abc import Iterable
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa

from judgemine.schemas import SCORE_CACHE, read_table, storage, write_table
from judgemine.transforms.common.candidates import as_bytes

log = logging.getLogger(__name__)


def pair_key(judge_id: str, prompt_id: str, query_payload: str, candidate_payload: str) -> str:
    """One request's key: who judged, with which prompt, exactly what."""
    return hashlib.sha256(f"{judge_id}\x00{prompt_id}\x00{query_payload}\x00{candidate_payload}".encode()
                          ).hexdigest()[:32]


def cache_files(directory: str) -> list[str]:
    """The cache's score files now. A judge stage reads the cache as listed when it starts: a score another
    chunk of the same run writes meanwhile is not used, so which pairs come from the cache (and so the
    shards, byte for byte) never depends on how chunks were scheduled over workers. A packed pair's score
    depends on its row-mates in the last float bits. Temporary files of writes that failed (a full disk, a
    kill) are swept here once they are older than any write takes."""
    names = storage.children(directory)
    if not storage.is_remote(directory):
        for n in names:
            path = os.path.join(directory, n)
            if n.startswith(".scores-") and ".tmp" in n and _age(path) > STALE_TMP_SECONDS:
                storage.remove(path)
    return [os.path.join(directory, n) for n in names if n.startswith("scores-") and n.endswith(".parquet")]


STALE_TMP_SECONDS = 600.0  # a cache file is written in well under a second


def _age(path: str) -> float:
    try:
        return time.time() - os.stat(path).st_mtime
    except OSError:
        return 0.0


def read_cache_file(path: str, columns: list[str] | None = None) -> pa.Table | None:
    """One cache file's scores; a file that cannot be read (truncated, empty, not Parquet) is renamed aside
    (`<name>.damaged`), named in one warning, and its pairs are judged again: one bad file never blocks a run."""
    try:
        return read_table(path, SCORE_CACHE, columns)
    except Exception as e:  # noqa: BLE001 - pyarrow, the filesystems and the schema check each raise their own
        try:
            storage.move(path, path + ".damaged")
        except OSError:
            pass  # another run sharing the cache moved it first
        log.warning("judge score cache: %s is unreadable (%s: %s); moved aside to %s.damaged, its pairs are judged "
                    "again", path, type(e).__name__, str(e).splitlines()[0][:200], os.path.basename(path))
        return None


def _key_range(key: str) -> int:
    """Keys are hex digests: their first two digits split the cache into 256 ranges of equal expected size."""
    return int(key[:2], 16)


class _AskByRange(beam.DoFn):
    def process(self, asked: tuple[int, list[str]]) -> Iterable[tuple[int, tuple[int, list[str]]]]:
        chunk, keys = asked
        by_range: dict[int, list[str]] = {}
        for k in keys:
            by_range.setdefault(_key_range(k), []).append(k)
        for r, ks in by_range.items():
            yield r, (chunk, ks)


class _ReadCacheFile(beam.DoFn):
    """One cache file's scores split by key range, tagged with the file's place in the listing."""

    def process(self, numbered: tuple[int, str]) -> Iterable[tuple[int, tuple[int, list[str], list[float]]]]:
        number, path = numbered
        table = read_cache_file(path)
        if table is None:
            return
        by_range: dict[int, tuple[list[str], list[float]]] = {}
        for k, v in zip(table.column("key").to_pylist(), table.column("score").to_pylist()):
            keys, scores = by_range.setdefault(_key_range(k), ([], []))
            keys.append(k)
            scores.append(v)
        for r, (keys, scores) in by_range.items():
            yield r, (number, keys, scores)


class _AnswerFromRange(beam.DoFn):
    """One key range of the cache against every chunk's keys in it; a key scored twice (two runs judging the
    same pair at once) keeps its score from the later file of the listing."""

    def process(self, joined: tuple[int, dict[str, list[Any]]]) -> Iterable[tuple[int, dict[str, float]]]:
        known: dict[str, float] = {}
        for _, keys, scores in sorted(joined[1]["cache"], key=lambda entry: entry[0]):
            known.update(zip(keys, scores))
        for chunk, keys in joined[1]["asked"]:
            found = {k: known[k] for k in keys if k in known}
            if found:
                yield chunk, found


class CachedScores(beam.PTransform):
    """(chunk, pair keys) -> (chunk, {key: score}) for the keys the cache files hold: a join by key range, so a
    worker holds one range of the cache (1/256 of it) and the keys asked of it, never the whole cache."""

    def __init__(self, files: list[str]) -> None:
        super().__init__()
        self._files = files

    def expand(self, asked: beam.PCollection) -> beam.PCollection:
        ranges = asked | "AskByRange" >> beam.ParDo(_AskByRange())
        cache = (asked.pipeline | "ListCacheFiles" >> beam.Create(list(enumerate(self._files)), reshuffle=False)
                 | "SpreadCacheFiles" >> beam.Reshuffle()
                 | "ReadCacheFiles" >> beam.ParDo(_ReadCacheFile()))
        return ({"asked": ranges, "cache": cache}
                | "JoinByRange" >> beam.CoGroupByKey()
                | "AnswerFromRange" >> beam.ParDo(_AnswerFromRange())
                | "GroupByChunk" >> beam.GroupByKey()
                | "MergeAnswers" >> beam.MapTuple(lambda chunk, found: (chunk, {k: v for d in found
                                                                                for k, v in d.items()})))


def cached_keys(files: Iterable[str]) -> np.ndarray:
    """Every key the given cache files hold, as one sorted bytes array (32 bytes a key, no Python object per
    key): `judgemine plan` counts the planned pairs found in it, in the driver."""
    tables = [read_cache_file(path, ["key"]) for path in files]
    blocks = [as_bytes(t.column("key")) for t in tables if t is not None]
    return np.unique(np.concatenate(blocks)) if blocks else np.zeros(0, np.bytes_)


def append_scores(directory: str, keys: Iterable[str], scores: Iterable[float]) -> None:
    """Persists new scores as one file, whole or not at all: a local one is renamed into place; an object
    store publishes an object when its upload completes (and the table is written in one call)."""
    table = pa.table({"key": pa.array(list(keys), pa.string()), "score": pa.array(list(scores), pa.float32())})
    if table.num_rows == 0:
        return
    name = f"scores-{uuid.uuid4().hex}.parquet"
    if storage.is_remote(directory):
        write_table(table, os.path.join(directory, name), SCORE_CACHE)
        return
    storage.make_dirs(directory)
    tmp = os.path.join(directory, f".{name}.tmp")
    try:
        write_table(table, tmp, SCORE_CACHE)
        os.replace(tmp, os.path.join(directory, name))
    finally:
        storage.remove(tmp)  # a failed write (a full disk) leaves nothing; after the rename there is nothing
