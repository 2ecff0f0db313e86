"""What every export shares: the committed shards streamed a batch at a time, the first k negatives, fallback
rows kept or skipped (and counted), and a destination written under a temporary name and renamed when whole."""
from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from judgemine.pipelines.outputs.derived import note_derived
from judgemine.pipelines.run.errors import UserError
from judgemine.pipelines.run.ownership import is_ours
from judgemine.schemas import SHARDS, parquet_file, storage
from judgemine.schemas.commits import commit_id, committed_shards, read_record
from judgemine.schemas.io import check_schema, shard_info
from judgemine.schemas.layout import COMMITTED, RunLayout
from judgemine.transforms.common.options import NoOptions

NEGATIVE_LISTS = ("neg_ids", "neg_texts", "neg_images", "neg_scores", "neg_ranks", "neg_similarities")


@dataclass(frozen=True)
class ExportOptions:
    """What every format shares; a format's own options are its `Options` (transforms/common/options.py)."""
    num_negatives: int | None = None  # the first k stored negatives; None = all
    skip_fallback: bool | None = None  # None = the format's default


@dataclass
class ExportResult:
    records: int = 0
    rows: int = 0
    fallback_skipped: int = 0
    dropped: int = 0  # rows the format could not write (an n-tuple row short of k distinct negatives; graph batches)


class Exporter:
    """One format (`judgemine export --format NAME`): `write` gets the rows (negatives already cut to k) and an
    open destination. `Options`: the format's own flags, each named for this format alone; `own` their values."""
    name: ClassVar[str]
    suffix: ClassVar[str]
    binary: ClassVar[bool] = False
    skips_fallback: ClassVar[bool] = True  # the default; a fallback row's negatives outscore its positive
    text_only: ClassVar[bool] = False
    Options: ClassVar[type] = NoOptions
    dropped_as: ClassVar[str] = "with fewer distinct negatives than asked dropped"  # the export line's words

    def __init__(self, options: ExportOptions, own: Any = None) -> None:
        self.options = options
        self.own = self.Options() if own is None else own
        self.dropped = 0  # rows left out by the format itself, counted by its `write`

    def prepare(self, output: str) -> None:
        """Reads what the format needs from the committed run besides its shards (nothing, but for a few)."""

    def write(self, rows: Iterator[dict[str, Any]], f: Any, k: int) -> int:
        """Writes the rows (each with k negatives) to `f`; returns the records written."""
        raise NotImplementedError




def check_destination(output: str, destination: str) -> str:
    """Where the export may be written, by its real path (links resolved): a new name or an existing regular file,
    never a folder, a device, a FIFO, nor a file under what any run commits (a file in shards/ would be read as a
    shard; a link into another run's shards/ would overwrite one)."""
    if storage.is_remote(destination):
        base = output.rstrip("/") + "/"
        if destination.startswith(base) and destination[len(base):].split("/")[0] in COMMITTED:
            raise UserError(f"--to {destination} is inside the run's committed files: export to "
                            f"{RunLayout(output).export}/ or anywhere outside the run")
        return destination
    real = os.path.realpath(destination)
    if os.path.isdir(real):
        raise UserError(f"--to {destination} is a folder: give a file name")
    if os.path.lexists(real) and not os.path.isfile(real):
        raise UserError(f"--to {destination} is not a regular file ({_kind(real)}): give a new file name")
    folder = os.path.dirname(real)
    while True:
        if is_ours(folder):
            inside = os.path.relpath(real, folder).split(os.sep)[0]
            if inside in COMMITTED:
                raise UserError(f"--to {destination} is inside the run's committed files ({inside} of {folder}): "
                                f"export to {RunLayout(output).export}/ or anywhere outside a run")
        parent = os.path.dirname(folder)
        if parent == folder:
            return real
        folder = parent


def _kind(path: str) -> str:
    mode = os.stat(path).st_mode
    return ("a FIFO" if stat.S_ISFIFO(mode) else "a character device" if stat.S_ISCHR(mode)
            else "a block device" if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a file")


def shard_rows(parts: list[str], k: int, skip_fallback: bool, result: ExportResult,
               text_only: str = "") -> Iterator[dict[str, Any]]:
    """The shards' rows, a batch at a time, with their first k negatives; `text_only` names a format that
    cannot carry images (a row with one is an error)."""
    for path in parts:
        with parquet_file(path) as f:
            check_schema(f.schema_arrow, SHARDS, path)
            batches = f.iter_batches(batch_size=1024)
            for row in (row for batch in batches for row in batch.to_pylist()):
                result.rows += 1
                if row["fallback"] and skip_fallback:
                    result.fallback_skipped += 1
                    continue
                if text_only and (row["query_image"] or row["pos_image"] or any(row["neg_images"])):
                    raise UserError(f"the {text_only} export is text-only; query {row['query_id']} has images "
                                    f"(use --format unime)")
                row.update({name: row[name][:k] for name in NEGATIVE_LISTS})
                yield row


def run_export(exporter: Exporter, output: str, destination: str) -> ExportResult:
    result = ExportResult()
    opts = exporter.options
    skip = exporter.skips_fallback if opts.skip_fallback is None else opts.skip_fallback
    destination = check_destination(output, destination)
    try:
        parts, record = committed_shards(output)
    except (FileNotFoundError, ValueError) as e:
        raise UserError(str(e)) from None
    if not parts:
        raise UserError(f"no shards under {output}/shards: the run mined no rows")
    stored = min(shard_info(p).num_negatives for p in parts)
    k = stored if opts.num_negatives is None else opts.num_negatives
    if not 0 < k <= stored:
        raise UserError(f"--num-negatives {k}: the shards store {stored} negatives per row")
    exporter.prepare(output)
    rows = shard_rows(parts, k, skip, result, exporter.name if exporter.text_only else "")
    tmp = f"{destination}.tmp-{os.getpid()}"
    try:
        with storage.open_write(tmp) as raw:
            if exporter.binary:
                result.records = exporter.write(rows, raw, k)
            else:
                text = io.TextIOWrapper(raw, encoding="utf-8")
                result.records = exporter.write(rows, text, k)
                text.detach()  # flushes; `raw` stays open for the with block to close
        if read_record(output, "mine") != record:  # an object store has no reader lock: read, then re-check
            raise UserError(f"{output} was rewritten by a run during the export: export again")
        result.dropped = exporter.dropped
        storage.move(tmp, destination)
        note_derived(output, destination, "export", commit_id(record))
    finally:
        storage.remove(tmp)
    return result


def distinct(values: list[Any]) -> list[Any]:
    """First occurrences in order: a row whose filter left n < m candidates repeats them to fill m."""
    return list(dict.fromkeys(values))
