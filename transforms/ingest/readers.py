"""Pair and corpus rows read from JSONL, JSON arrays, Parquet and CSV/TSV with a header into judgemine's fields
(docs/SPEC.md section 1; the layouts in transforms/ingest/layouts.py). A row that cannot be used raises RowError,
whose message is its rejects reason; nothing is dropped silently."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from judgemine.transforms.common.text import strip_image_tokens
from judgemine.transforms.ingest.layouts import LAYOUTS, FieldMap, PairsLayout, recognise, unknown_layout

DELIMITERS = {".csv": ",", ".tsv": "\t"}  # delimited text with a header row, by the file's extension


BOM = b"\xef\xbb\xbf"


ASSIGNED_ID_PREFIX = "auto:"  # a pair without a query_id gets "auto:<pair hash>": user ids cannot take it
PAIR_FIELDS = ("query_text", "query_image", "pos_text", "pos_image")  # a pair's content, as read


def assigned_query_id(pair: dict[str, str]) -> str:
    """A pair's id from its content alone (query and positive, text as given and image fields): unique across
    every input of the run and the same whatever the file's name, format or line layout. The same pair met again
    is read once (transforms/ingest/pool.py: MergeRepeatedPairs)."""
    payload = "\x00".join(pair[k] for k in PAIR_FIELDS)
    return ASSIGNED_ID_PREFIX + hashlib.sha256(payload.encode("utf-8")).hexdigest()[:20]


class RowError(ValueError):
    """A row that cannot be used; the message is the rejects reason. `raw` is the row's text when it never
    became a row (a line that is not JSON or not UTF-8), for the rejects."""

    def __init__(self, reason: str, raw: str | None = None) -> None:
        super().__init__(reason)
        self.raw = raw


def read_rows(path: str) -> Iterator[tuple[int, Any]]:
    """(1-based line number, parsed row or RowError) for JSONL, JSON array, Parquet and CSV/TSV files. A UTF-8
    byte-order mark and CRLF line ends are read; JSON Lines are split at newline bytes only (U+2028 may sit in a
    string)."""
    lower = path.lower()
    with FileSystems.open(path, compression_type="uncompressed") as f:
        data = f.read()
    delimiter = DELIMITERS.get(os.path.splitext(lower)[1])
    if delimiter:
        yield from _delimited_rows(path, data[len(BOM):] if data.startswith(BOM) else data, delimiter)
        return
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
        yield i, _json_row(line)


def _json_row(line: str) -> Any:
    """One JSON line parsed, or the RowError saying why not: malformed, nested deeper than Python can follow, or a
    number too long to convert. One line never ends the file."""
    try:
        return json.loads(line)
    except json.JSONDecodeError as e:
        return RowError(f"malformed_json: {e.msg}", line)
    except RecursionError:
        return RowError("too_deep: JSON nested deeper than Python's recursion limit", line)
    except ValueError as e:  # CPython's limit on integer digits
        return RowError(f"number_too_long: {str(e).split(';')[0]}", line)


def _delimited_rows(path: str, data: bytes, delimiter: str) -> Iterator[tuple[int, Any]]:
    """CSV/TSV rows as {header name: cell}, numbered by the line each ends on (a quoted cell may span lines). A
    record the csv module cannot read (a NUL byte, a stray quote) or with bytes that are not UTF-8 is a RowError
    of its own; cells of any length are read (--max-text-chars then judges them); the file goes on."""
    text = data.decode("utf-8", "surrogateescape")  # a bad byte spoils its cell only: invalid_unicode there
    csv.field_size_limit(sys.maxsize)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader, None)
    except csv.Error as e:
        raise ValueError(f"{path}: its header line is not readable {'TSV' if delimiter == chr(9) else 'CSV'} "
                         f"({e})") from e
    if header is not None and not _encodable("".join(header)):
        raise ValueError(f"{path}: its header line is not UTF-8 text")
    lines: list[str] = []  # the file's lines, split only when a record must be given back as it was written
    while True:
        ended = reader.line_num  # the last line of the record before
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as e:  # rare in the default dialect, with no field size limit; never the file's end
            lines = lines or text.split("\n")
            yield reader.line_num, RowError(f"malformed_csv: {e}", "\n".join(lines[ended:reader.line_num]))
            continue
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(header or ()):
            yield reader.line_num, RowError(f"wrong_column_count: {len(cells)} cells, the header has "
                                            f"{len(header or ())}", delimiter.join(cells))
            continue
        yield reader.line_num, dict(zip(header or (), cells))


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


def parse_pairs(row: Any, layout: PairsLayout, max_chars: int = 0, fields: FieldMap = FieldMap()
                ) -> list[dict[str, str]]:
    """One pair row to judgemine's fields: one pair, or one per positive of a FlagEmbedding `pos` list; raises
    RowError with the reason. `layout` "auto" recognises each row's own; the user's field names (`fields`), when
    they name a query or positive field, replace it. Texts longer than `max_chars` (0: no limit) are refused."""
    if isinstance(row, RowError):
        raise row
    if not isinstance(row, dict):
        raise RowError(f"not_an_object: {type(row).__name__}")
    found = fields.layout() or (recognise(row) if layout == "auto" else LAYOUTS[layout])
    if found is None:
        raise RowError(unknown_layout(row))
    query_key = next((k for k in found.query_text if k in row), found.query_text[0])
    no_image = not found.query_image or found.query_image not in row
    query = {"query_text": _string(row, query_key, no_image, max_chars),
             "query_image": _string(row, found.query_image, required=False) if found.query_image else "",
             "dataset": _string(row, fields.subset, required=False), "query_id": _id(row, fields.id)}
    if query["query_id"].startswith(ASSIGNED_ID_PREFIX):
        raise RowError(f"reserved_query_id: ids beginning {ASSIGNED_ID_PREFIX!r} are the ones judgemine assigns")
    if not strip_image_tokens(query["query_text"]) and not query["query_image"]:
        raise RowError("empty_query")
    if found.positives_list:
        positives = row.get(found.pos_text)
        if not isinstance(positives, list) or not positives:
            raise RowError(f"wrong_type: {found.pos_text} is {type(positives).__name__}, expected a non-empty "
                           "list of strings" if found.pos_text in row else f"missing_field: {found.pos_text}")
        sides = [{"pos_text": _string({found.pos_text: p}, found.pos_text, True, max_chars), "pos_image": ""}
                 for p in positives]
    else:
        no_image = not found.pos_image or found.pos_image not in row
        sides = [{"pos_text": _string(row, found.pos_text, no_image, max_chars),
                  "pos_image": _string(row, found.pos_image, required=False) if found.pos_image else ""}]
    if any(not strip_image_tokens(side["pos_text"]) and not side["pos_image"] for side in sides):
        raise RowError("empty_positive")
    return [{"query_text": query["query_text"], "query_image": query["query_image"], **side,
             "dataset": query["dataset"], "query_id": query["query_id"]} for side in sides]


def unread_fields(row: Any, layout: PairsLayout, fields: FieldMap = FieldMap()) -> tuple[str, ...]:
    """The fields of a pair row that nothing reads (a triplet's negative, a score column): ingest names them once
    per file, so a column the user meant to be read is not dropped in silence."""
    if not isinstance(row, dict):
        return ()
    found = fields.layout() or (recognise(row) if layout == "auto" else LAYOUTS[layout])
    if found is None:
        return ()
    read = {*found.query_text, found.pos_text, found.query_image, found.pos_image, fields.id, fields.subset}
    return tuple(k for k in row if k not in read)


def give_ids(pairs: list[dict[str, str]]) -> None:
    """The query ids of one row's pairs: assigned from content where the row has none; a FlagEmbedding row's own
    id with several positives gets `#1`, `#2`, ... per positive."""
    for k, pair in enumerate(pairs, start=1):
        if not pair["query_id"]:
            pair["query_id"] = assigned_query_id(pair)
        elif len(pairs) > 1:
            pair["query_id"] += f"#{k}"


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
    try:
        text = json.dumps(raw, ensure_ascii=False, default=str)
        return text if _encodable(text) else json.dumps(raw, ensure_ascii=True, default=str)
    except (RecursionError, ValueError):  # nested too deep to write back: its shape, not its content
        return json.dumps({"unrepresentable_row": type(raw).__name__})


