"""Ingest's DoFns: parse files (one file per worker: JSON is cheap), then check every image and give every record
its content ids (batches spread over all workers: decoding images is the cost). The global checks over ids
follow in transforms/ingest/pool.py."""
from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import apache_beam as beam
import pyarrow as pa
from apache_beam.metrics import Metrics

from judgemine.schemas import IMAGES, REJECTS, list_parts, read_table, write_table
from judgemine.schemas.digests import file_digest
from judgemine.transforms.common.content import content_id, payload_id
from judgemine.transforms.common.images import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    ImageError,
    check,
    disk_identity,
    resolve,
)
from judgemine.transforms.common.progress import StageWork
from judgemine.transforms.common.rejects import reject_row
from judgemine.transforms.ingest.layouts import FieldMap, PairsLayout
from judgemine.transforms.ingest.readers import (
    RowError,
    as_json,
    give_ids,
    parse_corpus_row,
    parse_pairs,
    read_rows,
    unread_fields,
)

BATCH_ROWS = 2000
FILE_ROWS = "rows_of:"  # + an input's path: the counter of its rows (a FlagEmbedding row, one per positive)
UNREAD_FIELD = "unread:"  # + JSON [path, field]: the counter of a pair file's rows holding a field nothing reads


def unread_counter(path: str, field: str) -> str:
    return UNREAD_FIELD + json.dumps([path, field])


@dataclass(frozen=True)
class ImagePolicy:
    """How ingest treats image fields: opened, decoded and hashed (default), or carried unread."""
    root: str = ""
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_bytes: int = DEFAULT_MAX_BYTES
    check: bool = True

    def validate(self, *paths: str) -> None:
        """Raises RowError with the image's reason (missing_image, unreadable_image, ...). The image root is
        enforced even when images are carried unread."""
        for path in paths:
            if path:
                try:
                    if self.check:
                        check(path, self.root, self.max_pixels, self.max_bytes)
                    else:
                        resolve(path, self.root)
                except ImageError as e:
                    raise RowError(str(e)) from e


@dataclass(frozen=True)
class InputFile:
    """One file to read: `kind` is "pairs" or "corpus"."""
    path: str
    kind: Literal["pairs", "corpus"]


class ParseInputFile(beam.DoFn):
    """Reads one input file and emits coarse Arrow tables: ("pairs" | "corpus" | "rejects", table)."""

    def __init__(self, layout: PairsLayout, fields: FieldMap, max_chars: int, work: StageWork) -> None:
        self._layout, self._fields, self._max_chars, self._work = layout, fields, max_chars, work
        self._rows = {kind: Metrics.counter("judgemine.ingest", f"{kind}_rows_read") for kind in ("pairs", "corpus")}
        self._rejected = Metrics.counter("judgemine.ingest", "rows_rejected")
        self._more_pairs = Metrics.counter("judgemine.ingest", "pairs_from_positive_lists")

    def setup(self) -> None:
        self._work.started()

    def process(self, spec: InputFile) -> Iterable[tuple[str, pa.Table]]:
        source = os.path.basename(spec.path)
        stem = source.split(".")[0]
        good: list[dict[str, Any]] = []
        bad: list[dict[str, Any]] = []
        file_rows = Metrics.counter("judgemine.ingest", f"{FILE_ROWS}{spec.path}")
        read = reported = 0  # rows read, and reported to the stage's progress
        unread: Counter[str] = Counter()
        for line, raw in read_rows(spec.path):
            self._rows[spec.kind].inc()
            read += 1
            if spec.kind == "pairs":
                unread.update(unread_fields(raw, self._layout, self._fields))
            try:
                recs: list[dict[str, Any]] = (
                    parse_pairs(raw, self._layout, self._max_chars, self._fields) if spec.kind == "pairs"
                    else [parse_corpus_row(raw, self._max_chars)])
            except RowError as e:
                self._rejected.inc()
                bad.append(reject_row("ingest", str(e), spec.path, line, as_json(raw)))
                file_rows.inc()
                continue
            file_rows.inc(len(recs))
            row_text = as_json(raw)
            if spec.kind == "pairs":
                give_ids(recs)
            for rec in recs:
                rec.update(source=spec.path, line=line, dataset=rec["dataset"] or stem, raw=row_text)
                good.append(rec)
            self._more_pairs.inc(len(recs) - 1)
            if len(good) >= BATCH_ROWS:
                self._work.add(read - reported)
                reported = read
                yield spec.kind, pa.Table.from_pylist(good)
                good = []
        self._work.add(read - reported)
        for name, rows in unread.items():
            Metrics.counter("judgemine.ingest", unread_counter(spec.path, name)).inc(rows)
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
        i = self._images
        return content_id(text, image, i.root, i.check, i.max_pixels, i.max_bytes)

    def _payload(self, text: str, image: str) -> str:
        i = self._images
        return payload_id(text, image, i.root, i.check, i.max_pixels, i.max_bytes)

    def process(self, tagged: tuple[str, pa.Table]) -> Iterable[tuple[str, pa.Table]]:
        kind, table = tagged
        if kind == "rejects":
            yield tagged
            return
        good, bad, read = [], [], {}
        for r in table.to_pylist():
            try:
                if kind == "pairs":
                    self._images.validate(r["query_image"], r["pos_image"])
                    r.update(query_content_id=self._id(r["query_text"], r["query_image"]),
                             query_payload=self._payload(r["query_text"], r["query_image"]),
                             pos_id=self._id(r["pos_text"], r["pos_image"]),
                             pos_payload=self._payload(r["pos_text"], r["pos_image"]),
                             query_image_id=self._id("", r["query_image"]) if r["query_image"] else "")
                else:
                    self._images.validate(r["image"])
                    r.update(candidate_id=self._id(r["text"], r["image"]), payload=self._payload(r["text"], r["image"]))
            except RowError as e:
                self._rejected.inc()
                bad.append(reject_row("ingest", str(e), r["source"], r["line"], r["raw"], r.get("query_id")))
                continue
            good.append(r)
            if self._images.check:
                read.update(self._read(r.get("query_image", ""), r.get("pos_image", ""), r.get("image", "")))
        if good:
            yield kind, pa.Table.from_pylist(good)
        if bad:
            yield "rejects", pa.Table.from_pylist(bad, schema=REJECTS)
        if read:
            yield "images", pa.Table.from_pylist([{"path": p, "sha256": d, "disk": disk_identity(p)}
                                                  for p, d in sorted(read.items())], schema=IMAGES)

    def _read(self, *images: str) -> dict[str, str]:
        """{resolved path: sha256} of a record's images (each already read by `validate`: a cache hit)."""
        i = self._images
        return {resolve(path, i.root): check(path, i.root, i.max_pixels, i.max_bytes).sha256 for path in images
                if path}


class WriteImageList(beam.DoFn):
    """The images a batch read, one part file each (named by its content: a retried bundle rewrites the same
    file), so no worker gathers the run's image list."""

    def __init__(self, directory: str) -> None:
        self._dir = directory

    def process(self, table: pa.Table) -> None:
        name = hashlib.sha256("\n".join(table.column("path").to_pylist()).encode()).hexdigest()[:20]
        write_table(table, os.path.join(self._dir, f"part-{name}.parquet"), IMAGES)


def changed_images(directory: str) -> str:
    """The first image ingest read that is gone or has other bytes now ("" when none): identities compared
    first, an image read again only when its identity changed."""
    for path in list_parts(directory):
        for row in read_table(path, IMAGES).to_pylist():
            try:
                if disk_identity(row["path"]) == row["disk"]:
                    continue
                digest = file_digest(row["path"])
            except Exception:  # noqa: BLE001 - gone or unreadable, on any filesystem: each raises its own

                return f"image {row['path']} is gone or unreadable"
            if digest != row["sha256"]:
                return f"image {row['path']} was replaced since ingest read it"
    return ""


