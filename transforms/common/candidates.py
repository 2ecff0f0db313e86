"""The candidate pool's sides by id, for the stages that show candidates to a model or a trainer."""
from __future__ import annotations

import os

from judgemine.schemas import CANDIDATES, list_parts, read_table
from judgemine.transforms.common.sides import Side


class CandidateLookup:
    """candidate_id -> (text, image) for the whole pool, loaded once per worker process."""

    def __init__(self, ingest_dir: str) -> None:
        self.sides: dict[str, Side] = {}
        for path in list_parts(os.path.join(ingest_dir, "candidates")):
            for r in read_table(path, CANDIDATES, ["candidate_id", "text", "image"]).to_pylist():
                self.sides[r["candidate_id"]] = Side(r["text"], r["image"])
