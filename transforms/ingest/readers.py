"""Pair and corpus rows read from JSONL, JSON arrays and Parquet into judgemine's fields (docs/SPEC.md section 1).
A row that cannot be used raises RowError, whose message is its rejects reason; nothing is dropped silently."""
from __future__ import annotations

import io
import json
from typing import Any, Iterator, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from judgemine.transforms.common.text import strip_image_tokens

PairsLayout = Literal["auto", "unime", "mmeb"]
# Field names of each accepted layout: judgemine's own (= the UniME-V2 record) and VLM2Vec / MMEB-train.
LAYOUTS = {
    "unime": {"query_text": "query_text", "query_image": "query_image", "pos_text": "pos_text",
              "pos_image": "pos_image"},
    "mmeb": {"query_text": "qry", "query_image": "qry_image_path", "pos_text": "pos_text",
             "pos_image": "pos_image_path"},
}


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


def parse_pair(row: Any, layout: PairsLayout) -> dict[str, str]:
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


def as_json(raw: Any) -> str:
    """The input row as it was read, for the rejects (a line that did not parse has none)."""
    return json.dumps(None if isinstance(raw, RowError) else raw, ensure_ascii=False, default=str)


