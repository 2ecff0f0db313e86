"""Pair and corpus rows read from JSONL, JSON arrays and Parquet into judgemine's fields (docs/SPEC.md section 1).
A row that cannot be used raises RowError, whose message is its rejects reason; nothing is dropped silently."""
from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any, Literal

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


BOM = b"\xef\xbb\xbf"


ASSIGNED_ID_PREFIX = "auto:"  # a pair without a query_id gets "auto:<file stem>:<line>": user ids cannot take it


def assigned_query_id(stem: str, line: int) -> str:
    return f"{ASSIGNED_ID_PREFIX}{stem}:{line}"


class RowError(ValueError):
    """A row that cannot be used; the message is the rejects reason. `raw` is the row's text when it never
    became a row (a line that is not JSON or not UTF-8), for the rejects."""

    def __init__(self, reason: str, raw: str | None = None) -> None:
        super().__init__(reason)
        self.raw = raw


def read_rows(path: str) -> Iterator[tuple[int, Any]]:
    """(1-based row number, parsed row or RowError) for JSONL, JSON array and Parquet files. A UTF-8 byte-order
    mark and CRLF line ends are read; JSON Lines are split at newline bytes only (U+2028 may sit in a string)."""
    lower = path.lower()
    with FileSystems.open(path, compression_type="uncompressed") as f:
        data = f.read()
    if lower.endswith(".parquet"):
        try:
            rows = pq.read_table(io.BytesIO(data)).to_pylist()
        except pa.ArrowException as e:
            raise ValueError(f"{path}: not a readable Parquet file ({e})") from e
        for i, row in enumerate(rows, start=1):
            yield i, row
        return
    data = data[len(BOM):] if data.startswith(BOM) else data
    if lower.endswith(".json") and data.lstrip().startswith(b"["):
        try:
            rows = json.loads(data.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}: not UTF-8 text ({e})") from e
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not a valid JSON array ({e})") from e
        for i, row in enumerate(rows, start=1):
            yield i, row
        return
    for i, raw in enumerate(data.split(b"\n"), start=1):
        raw = raw[:-1] if raw.endswith(b"\r") else raw
        if not raw.strip():
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            yield i, RowError(f"invalid_utf8: byte {e.start} of the line", raw.decode("utf-8", "backslashreplace"))
            continue
        try:
            yield i, json.loads(line)
        except json.JSONDecodeError as e:
            yield i, RowError(f"malformed_json: {e.msg}", line)


def _string(row: dict[str, Any], key: str, required: bool, max_chars: int = 0) -> str:
    if key not in row:
        if required:
            raise RowError(f"missing_field: {key}")
        return ""
    value = row[key]
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RowError(f"wrong_type: {key} is {type(value).__name__}, expected string")
    if not _encodable(value):
        raise RowError(f"invalid_unicode: {key} holds a lone surrogate (not encodable as UTF-8)")
    if max_chars and len(value) > max_chars:
        raise RowError(f"text_too_long: {key} has {len(value)} characters (max {max_chars})")
    return value


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_pair(row: Any, layout: PairsLayout, max_chars: int = 0) -> dict[str, str]:
    """One pair row in the UniME-V2 or MMEB layout to judgemine's fields; raises RowError with the reason.
    Texts longer than `max_chars` (0: no limit) are refused."""
    if isinstance(row, RowError):
        raise row
    if not isinstance(row, dict):
        raise RowError(f"not_an_object: {type(row).__name__}")
    if layout == "auto":
        layout = "mmeb" if "qry" in row else "unime"
    names = LAYOUTS[layout]
    out = {
        "query_text": _string(row, names["query_text"], names["query_image"] not in row, max_chars),
        "query_image": _string(row, names["query_image"], required=False),
        "pos_text": _string(row, names["pos_text"], names["pos_image"] not in row, max_chars),
        "pos_image": _string(row, names["pos_image"], required=False),
        "dataset": _string(row, "dataset", required=False),
    }
    out["query_id"] = _id(row, "query_id")
    if out["query_id"].startswith(ASSIGNED_ID_PREFIX):
        raise RowError(f"reserved_query_id: ids beginning {ASSIGNED_ID_PREFIX!r} are the ones judgemine assigns")
    if not strip_image_tokens(out["query_text"]) and not out["query_image"]:
        raise RowError("empty_query")
    if not strip_image_tokens(out["pos_text"]) and not out["pos_image"]:
        raise RowError("empty_positive")
    return out


def _id(row: dict[str, Any], key: str) -> str:
    """An optional id field: a string or an integer, "" when absent."""
    value = row.get(key)
    if isinstance(value, bool) or (value is not None and not isinstance(value, (str, int))):
        raise RowError(f"wrong_type: {key} is {type(value).__name__}, expected string or integer")
    return "" if value is None else _string({key: str(value)}, key, required=True)


def parse_corpus_row(row: Any, max_chars: int = 0) -> dict[str, str]:
    if isinstance(row, RowError):
        raise row
    if not isinstance(row, dict):
        raise RowError(f"not_an_object: {type(row).__name__}")
    out = {"text": _string(row, "text", "image" not in row, max_chars),
           "image": _string(row, "image", required=False), "dataset": _string(row, "dataset", required=False),
           "corpus_id": _id(row, "id")}
    if not strip_image_tokens(out["text"]) and not out["image"]:
        raise RowError("empty_candidate")
    return out


def as_json(raw: Any) -> str:
    """The input row as it was read, for the rejects: the row as JSON (non-UTF-8-encodable characters such as
    lone surrogates \\u-escaped), or the raw line of a row that never parsed."""
    if isinstance(raw, RowError):
        text = raw.raw or ""
        return text if _encodable(text) else text.encode("utf-8", "backslashreplace").decode("utf-8")
    text = json.dumps(raw, ensure_ascii=False, default=str)
    return text if _encodable(text) else json.dumps(raw, ensure_ascii=True, default=str)


