"""A content-addressed store of judge scores: a rerun judges only pairs it has never judged.

The key is sha256(judge model id, prompt version, query content id, candidate content id): it survives
changes of beta, m, step, chunking and pool, and is invalidated by a new model, dtype or prompt. Scores are
appended as one Parquet file per judged chunk (written to a temporary name, then renamed), so a judge killed
halfway keeps every chunk it finished.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import uuid
from typing import Iterable

import pyarrow as pa

from judgemine.schemas import SCORE_CACHE, read_table, write_table


def judge_model_id(model_path: str, dtype: str) -> str:
    """Content-based id of a model folder (its config, and the names and sizes of its files) and dtype:
    the same weights under another path share scores, other weights or another dtype do not."""
    entries = [(name, os.path.getsize(os.path.join(model_path, name))) for name in sorted(os.listdir(model_path))
               if os.path.isfile(os.path.join(model_path, name))]
    with open(os.path.join(model_path, "config.json"), "rb") as f:
        config = hashlib.sha256(f.read()).hexdigest()
    payload = json.dumps({"files": entries, "config": config, "dtype": dtype}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def pair_key(model_id: str, prompt_version: str, query_content_id: str, candidate_id: str) -> str:
    return hashlib.sha256(f"{model_id}\x00{prompt_version}\x00{query_content_id}\x00{candidate_id}".encode()
                          ).hexdigest()[:32]


def cache_files(directory: str) -> list[str]:
    """The cache's score files now. A judge stage reads the cache as listed when it starts: a score another
    chunk of the same run writes meanwhile is not used, so which pairs come from the cache (and so the
    shards, byte for byte) never depends on how chunks were scheduled over workers. A packed pair's score
    depends on its row-mates in the last float bits."""
    return sorted(glob.glob(os.path.join(directory, "scores-*.parquet")))


class ScoreCache:
    """The scores of the given cache files, loaded once per worker (Beam's Shared) for look-ups."""

    def __init__(self, files: Iterable[str]) -> None:
        self.scores: dict[str, float] = {}
        for path in files:
            table = read_table(path, SCORE_CACHE)
            self.scores.update(zip(table.column("key").to_pylist(), table.column("score").to_pylist()))


def append_scores(directory: str, keys: Iterable[str], scores: Iterable[float]) -> None:
    """Persists new scores as one file; the rename makes it appear whole or not at all."""
    table = pa.table({"key": pa.array(list(keys), pa.string()), "score": pa.array(list(scores), pa.float32())})
    if table.num_rows == 0:
        return
    os.makedirs(directory, exist_ok=True)
    name = f"scores-{uuid.uuid4().hex}.parquet"
    tmp = os.path.join(directory, f".{name}.tmp")
    write_table(table, tmp, SCORE_CACHE)
    os.replace(tmp, os.path.join(directory, name))
