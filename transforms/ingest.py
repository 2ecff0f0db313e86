"""Parsing pair and corpus files into typed rows, and building the deduplicated candidate pool.

Three steps, so the costly one scales out: parsing (one file per worker: JSON is cheap), then checking and
hashing every image and giving every record its content id (batches spread over all workers: decoding images
is the cost), then the global checks over ids alone (duplicate query ids, dedup, exclusions). Every input row
leaves either as a typed row or as a rejects row with the reason; nothing is dropped.
"""
from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from schemas import REJECTS
from transforms.content import content_id
from transforms.images import DEFAULT_MAX_PIXELS, ImageError, check
from transforms.text import strip_image_tokens

# Field names of each accepted layout: judgemine's own (= the UniME-V2 record) and VLM2Vec / MMEB-train.
LAYOUTS = {
    "unime": {"query_text": "query_text", "query_image": "query_image", "pos_text": "pos_text",
              "pos_image": "pos_image"},
    "mmeb": {"query_text": "qry", "query_image": "qry_image_path", "pos_text": "pos_text",
             "pos_image": "pos_image_path"},
}
BATCH_ROWS = 2000


@dataclass(frozen=True)
class ImagePolicy:
    """How ingest treats image fields: opened, decoded and hashed (default), or carried unread."""
    root: str = ""
    max_pixels: int = DEFAULT_MAX_PIXELS
    check: bool = True

    def validate(self, *paths: str) -> None:
        """Raises RowError with the image's reason (missing_image, unreadable_image, ...)."""
        if not self.check:
            return
        for path in paths:
            if path:
                try:
                    check(path, self.root, self.max_pixels)
                except ImageError as e:
                    raise RowError(str(e)) from e


@dataclass(frozen=True)
class InputFile:
    """One file to read: `kind` is "pairs" or "corpus"."""
    path: str
    kind: str


class RowError(ValueError):
    """A row that cannot be used; the message is the rejects reason."""


def read_rows(path: str) -> Iterator[tuple[int, Any]]:
    """(1-based row number, parsed row or RowError) for JSONL, JSON array and Parquet files."""
    lower = path.lower()
    with FileSystems.open(path) as f:
        data = f.read()
    if lower.endswith(".parquet"):
        try:
            rows = pq.read_table(io.BytesIO(data)).to_pylist()
        except pa.ArrowException as e:
            raise ValueError(f"{path}: not a readable Parquet file ({e})") from e
        for i, row in enumerate(rows, start=1):
            yield i, row
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e})") from e
    if lower.endswith(".json") and text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not a valid JSON array ({e})") from e
        for i, row in enumerate(rows, start=1):
            yield i, row
        return
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield i, json.loads(line)
        except json.JSONDecodeError as e:
            yield i, RowError(f"malformed_json: {e.msg}")


def _string(row: dict[str, Any], key: str, required: bool) -> str:
    if key not in row:
        if required:
            raise RowError(f"missing_field: {key}")
        return ""
    value = row[key]
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RowError(f"wrong_type: {key} is {type(value).__name__}, expected string")
    return value


def parse_pair(row: Any, layout: str) -> dict[str, str]:
    """One pair row in the UniME-V2 or MMEB layout to judgemine's fields; raises RowError with the reason."""
    if isinstance(row, RowError):
        raise row
    if not isinstance(row, dict):
        raise RowError(f"not_an_object: {type(row).__name__}")
    if layout == "auto":
        layout = "mmeb" if "qry" in row else "unime"
    names = LAYOUTS[layout]
    out = {
        "query_text": _string(row, names["query_text"], required=names["query_image"] not in row),
        "query_image": _string(row, names["query_image"], required=False),
        "pos_text": _string(row, names["pos_text"], required=names["pos_image"] not in row),
        "pos_image": _string(row, names["pos_image"], required=False),
        "dataset": _string(row, "dataset", required=False),
    }
    query_id = row.get("query_id")
    if isinstance(query_id, bool) or (query_id is not None and not isinstance(query_id, (str, int))):
        raise RowError(f"wrong_type: query_id is {type(query_id).__name__}, expected string or integer")
    out["query_id"] = "" if query_id is None else str(query_id)
    if not strip_image_tokens(out["query_text"]) and not out["query_image"]:
        raise RowError("empty_query")
    if not strip_image_tokens(out["pos_text"]) and not out["pos_image"]:
        raise RowError("empty_positive")
    return out


def parse_corpus_row(row: Any) -> dict[str, str]:
    if isinstance(row, RowError):
        raise row
    if not isinstance(row, dict):
        raise RowError(f"not_an_object: {type(row).__name__}")
    out = {"text": _string(row, "text", required="image" not in row),
           "image": _string(row, "image", required=False), "dataset": _string(row, "dataset", required=False)}
    if not strip_image_tokens(out["text"]) and not out["image"]:
        raise RowError("empty_candidate")
    return out


def _as_json(raw: Any) -> str:
    """The input row as it was read, for the rejects (a line that did not parse has none)."""
    return json.dumps(None if isinstance(raw, RowError) else raw, ensure_ascii=False, default=str)


def _reject(source: str, line: int, reason: str, row_json: str, query_id: str | None = None) -> dict[str, Any]:
    return {"stage": "ingest", "reason": reason, "source": source, "line": line, "query_id": query_id,
            "row": row_json}


class ParseInputFile(beam.DoFn):
    """Reads one input file and emits coarse Arrow tables: ("pairs" | "corpus" | "rejects", table)."""

    def __init__(self, layout: str) -> None:
        self._layout = layout
        self._rows = Metrics.counter("judgemine.ingest", "rows_read")
        self._rejected = Metrics.counter("judgemine.ingest", "rows_rejected")

    def process(self, spec: InputFile) -> Iterable[tuple[str, pa.Table]]:
        source = os.path.basename(spec.path)
        stem = source.split(".")[0]
        good: list[dict[str, Any]] = []
        bad: list[dict[str, Any]] = []
        for line, raw in read_rows(spec.path):
            self._rows.inc()
            try:
                rec = parse_pair(raw, self._layout) if spec.kind == "pairs" else parse_corpus_row(raw)
            except RowError as e:
                self._rejected.inc()
                bad.append(_reject(spec.path, line, str(e), _as_json(raw)))
                continue
            rec.update(source=spec.path, line=line, dataset=rec["dataset"] or stem, raw=_as_json(raw))
            if spec.kind == "pairs" and not rec["query_id"]:
                rec["query_id"] = f"{stem}:{line}"
            good.append(rec)
            if len(good) >= BATCH_ROWS:
                yield spec.kind, pa.Table.from_pylist(good)
                good = []
        if good:
            yield spec.kind, pa.Table.from_pylist(good)
        if bad:
            yield "rejects", pa.Table.from_pylist(bad, schema=REJECTS)


class IdentifyRecords(beam.DoFn):
    """Checks a batch's images and gives each record its content ids: for a pair, the query's, the
    positive's and the query's bare image's; for a corpus row, the candidate's. Rejects pass through."""

    def __init__(self, images: ImagePolicy) -> None:
        self._images = images
        self._rejected = Metrics.counter("judgemine.ingest", "rows_rejected")

    def _id(self, text: str, image: str) -> str:
        return content_id(text, image, self._images.root, self._images.check, self._images.max_pixels)

    def process(self, tagged: tuple[str, pa.Table]) -> Iterable[tuple[str, pa.Table]]:
        kind, table = tagged
        if kind == "rejects":
            yield tagged
            return
        good, bad = [], []
        for r in table.to_pylist():
            try:
                if kind == "pairs":
                    self._images.validate(r["query_image"], r["pos_image"])
                    r.update(query_content_id=self._id(r["query_text"], r["query_image"]),
                             pos_id=self._id(r["pos_text"], r["pos_image"]),
                             query_image_id=self._id("", r["query_image"]) if r["query_image"] else "")
                else:
                    self._images.validate(r["image"])
                    r["candidate_id"] = self._id(r["text"], r["image"])
            except RowError as e:
                self._rejected.inc()
                bad.append(_reject(r["source"], r["line"], str(e), r["raw"], r.get("query_id")))
                continue
            good.append(r)
        if good:
            yield kind, pa.Table.from_pylist(good)
        if bad:
            yield "rejects", pa.Table.from_pylist(bad, schema=REJECTS)


def build_pool(pairs: list[dict[str, Any]], corpus: list[dict[str, Any]]
               ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Typed query rows, the deduplicated candidate pool and the rejects of the global checks, from records
    that IdentifyRecords has given their ids.

    Rows are taken in (source, line) order, so the first of several rows with one query_id is kept, and the
    first-seen copy of a candidate represents it. A query's `excluded_ids` are the positives of every pair
    with the same query content, plus the query itself and its bare image.
    """
    pairs = sorted(pairs, key=lambda r: (r["source"], r["line"]))
    seen_ids: set[str] = set()
    queries: list[dict[str, Any]] = []
    rejects: list[dict[str, Any]] = []
    pool: dict[str, dict[str, Any]] = {}
    positives_of: dict[str, set[str]] = {}
    for r in pairs:
        if r["query_id"] in seen_ids:
            rejects.append(_reject(r["source"], r["line"], "duplicate_query_id", r["raw"], r["query_id"]))
            continue
        seen_ids.add(r["query_id"])
        pool.setdefault(r["pos_id"], {"candidate_id": r["pos_id"], "text": r["pos_text"], "image": r["pos_image"],
                                      "dataset": r["dataset"]})
        positives_of.setdefault(r["query_content_id"], set()).add(r["pos_id"])
        queries.append(r)
    for r in sorted(corpus, key=lambda r: (r["source"], r["line"])):
        pool.setdefault(r["candidate_id"], {k: r[k] for k in ("candidate_id", "text", "image", "dataset")})
    for q in queries:
        excluded = positives_of[q["query_content_id"]] | {q["query_content_id"]}
        if q["query_image_id"]:
            excluded.add(q["query_image_id"])
        q["excluded_ids"] = sorted(excluded)
    candidates = [pool[k] for k in sorted(pool)]
    return queries, candidates, rejects


def tables_to_rows(tables: Iterable[pa.Table]) -> list[dict[str, Any]]:
    return [row for t in tables for row in t.to_pylist()]

