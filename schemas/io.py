"""Reading and writing artifacts through their schemas, on any filesystem Beam knows (local, gs://, s3://).
Beam is imported where a file is opened, not here: a trainer reads the shards (schemas/shard_dataset.py)
with pyarrow and torch only."""
from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from judgemine.schemas import storage
from judgemine.schemas.digests import DigestingStream, within_temporary
from judgemine.schemas.tables import FALLBACK_ROWS_KEY, IMAGE_ROOT_KEY, NUM_NEGATIVES_KEY, SHARDS, WRITE_OPTIONS


class SchemaMismatch(ValueError):
    """An artifact was written under another schema name or major version."""


def check_schema(found: pa.Schema, expected: pa.Schema, path: str) -> None:
    meta = found.metadata or {}
    want = expected.metadata
    name = meta.get(b"judgemine.schema", b"").decode()
    version = meta.get(b"judgemine.schema_version", b"").decode()
    if name != want[b"judgemine.schema"].decode():
        raise SchemaMismatch(f"{path}: schema {name!r}, expected {want[b'judgemine.schema'].decode()!r}")
    if version.split(".")[0] != want[b"judgemine.schema_version"].decode().split(".")[0]:
        raise SchemaMismatch(f"{path}: schema version {version!r} is not readable by this judgemine")


def write_table(table: pa.Table, path: str, schema: pa.Schema, metadata: dict[str, str] | None = None) -> None:
    """Casts `table` to `schema` (failing on a missing or mistyped column) and writes one Parquet file;
    `metadata` adds key/values of this file to the schema's own (e.g. a shard's image root)."""
    from apache_beam.io.filesystems import FileSystems
    if metadata:
        schema = schema.with_metadata({**schema.metadata, **{k.encode(): v.encode() for k, v in metadata.items()}})
    table = table.select(schema.names).cast(schema)
    options = {"compression": "zstd", **WRITE_OPTIONS.get(schema.metadata[b"judgemine.schema"].decode(), {})}
    sink = FileSystems.create(path)
    with DigestingStream(sink, path) if within_temporary(path) else sink as f:  # a stage's file: digest as written
        pq.write_table(table, f, **options)


def read_table(path: str, schema: pa.Schema, columns: list[str] | None = None) -> pa.Table:
    """Reads one Parquet artifact, checking that it was written under `schema`'s name and version."""
    from apache_beam.io.filesystems import FileSystems
    with FileSystems.open(path) as f:
        pf = pq.ParquetFile(f)
        check_schema(pf.schema_arrow, schema, path)
        return pf.read(columns=columns)


def part_name(i: int) -> str:
    """Part i of a stage's output: query chunk i is part i of every stage."""
    return f"part-{i:05d}.parquet"


PART = re.compile(r"part-(\d{5})(?:-of-\d{5})?\.parquet")


def part_index(path: str) -> int:
    """The number in a part file's name (part_name or shard_name); a name of another shape is an error."""
    found = PART.fullmatch(os.path.basename(path))
    if not found:
        raise ValueError(f"{path}: not a part file (part-NNNNN.parquet)")
    return int(found.group(1))


def shard_name(i: int, n: int) -> str:
    return f"part-{i:05d}-of-{n:05d}.parquet"


def list_parts(directory: str) -> list[str]:
    """A directory's part files in part order."""
    return [os.path.join(directory, n) for n in storage.children(directory)
            if n.startswith("part-") and n.endswith(".parquet")]


@contextlib.contextmanager
def parquet_file(path: str) -> Iterator[pq.ParquetFile]:
    """A Parquet file opened where it is (a local path directly, an object through Beam's FileSystems, which
    reads the footer and the asked-for columns by range)."""
    if not storage.is_remote(path):
        yield pq.ParquetFile(path)
        return
    from apache_beam.io.filesystems import FileSystems
    with FileSystems.open(path, compression_type="uncompressed") as f:
        yield pq.ParquetFile(f)


def num_rows(path: str) -> int:
    """A Parquet file's rows, from its footer."""
    with parquet_file(path) as f:
        return f.metadata.num_rows


@dataclass(frozen=True)
class ShardInfo:
    """A shard file's footer: its rows and the metadata the mine stage wrote into it (schemas/tables.py)."""
    rows: int
    num_negatives: int
    fallback_rows: int
    image_root: str


def footer(path: str, schema: pa.Schema) -> tuple[int, dict[str, str]]:
    """(rows, key/value metadata) of a Parquet artifact written under `schema`, from its footer alone."""
    with parquet_file(path) as f:
        check_schema(f.schema_arrow, schema, path)
        return f.metadata.num_rows, {k.decode(): v.decode() for k, v in (f.schema_arrow.metadata or {}).items()}


def shard_info(path: str) -> ShardInfo:
    rows, meta = footer(path, SHARDS)
    if NUM_NEGATIVES_KEY not in meta:
        raise SchemaMismatch(f"{path}: a shard without its metadata, written by an older judgemine: rerun "
                             f"`judgemine mine`")
    return ShardInfo(rows, int(meta[NUM_NEGATIVES_KEY]), int(meta[FALLBACK_ROWS_KEY]),
                     meta[IMAGE_ROOT_KEY])
