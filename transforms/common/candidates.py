"""The candidate pool joined to what a chunk asks of it: no worker holds the pool.

Ingest writes the pool as part files sorted by candidate id (and embed its vectors in the same parts), so a
part's first id says which ids it can hold. A join keys each request's ids by the part they fall in, groups by
part, and lets one worker read that part once and answer every request's ids in it by binary search; the
answers are grouped back by request. What a worker holds: one part and the ids asked of it.
"""
from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa

from judgemine.schemas import list_parts, parquet_file, read_table
from judgemine.transforms.common.sides import Side


def as_bytes(strings: pa.Array | pa.ChunkedArray | Sequence[str]) -> np.ndarray:
    """Strings as a fixed-width bytes array: ids are compared and searched as bytes."""
    if not isinstance(strings, (pa.Array, pa.ChunkedArray)):
        strings = pa.array(list(strings), pa.string())
    return strings.cast(pa.binary()).to_numpy(zero_copy_only=False).astype(np.bytes_)


def first_ids(parts: Sequence[str], column: str) -> tuple[np.ndarray, np.ndarray]:
    """(first id, part number) of every part that has rows, in part order: the smallest id from its Parquet
    footer where the writer kept statistics, else its first row."""
    firsts: list[bytes] = []
    numbers: list[int] = []
    for number, path in enumerate(parts):
        with parquet_file(path) as f:
            meta = f.metadata
            if meta.num_rows == 0:
                continue
            stats = meta.row_group(0).column(meta.schema.names.index(column)).statistics
            if stats is not None and stats.has_min_max:
                first = stats.min
            else:
                first = f.read_row_group(0, columns=[column]).column(column)[0].as_py()
        firsts.append(first.encode() if isinstance(first, str) else first)
        numbers.append(number)
    return np.asarray(firsts, dtype=np.bytes_), np.asarray(numbers, dtype=np.int64)


class _SplitByPart(beam.DoFn):
    """(request, ids) -> (part, (request, ids in that part)) for every part the ids fall in."""

    def __init__(self, firsts: tuple[np.ndarray, np.ndarray]) -> None:
        self._firsts, self._numbers = firsts

    def process(self, request: tuple[Hashable, np.ndarray]) -> Iterable[tuple[int, tuple[Hashable, np.ndarray]]]:
        key, ids = request
        ids = np.unique(ids)
        at = np.searchsorted(self._firsts, ids, side="right") - 1  # the last part starting at or before the id
        for i in np.unique(at[at >= 0]):
            yield int(self._numbers[i]), (key, ids[at == i])


class _AnswerFromPart(beam.DoFn):
    """One part read once; every request's ids in it answered with their rows (ids it lacks are left out)."""

    def __init__(self, parts: Sequence[str], schema: pa.Schema, id_column: str, columns: Sequence[str]) -> None:
        self._parts, self._schema, self._id, self._columns = list(parts), schema, id_column, list(columns)

    def process(self, grouped: tuple[int, Iterable[tuple[Hashable, np.ndarray]]]
                ) -> Iterable[tuple[Hashable, pa.Table]]:
        part, requests = grouped
        table = read_table(self._parts[part], self._schema, [self._id, *self._columns])
        ids = as_bytes(table.column(self._id))
        for key, wanted in requests:
            at = np.minimum(np.searchsorted(ids, wanted), max(len(ids) - 1, 0))
            found = at[ids[at] == wanted] if len(ids) else at[:0]
            yield key, table.take(pa.array(found, pa.int64()))


class PoolLookup(beam.PTransform):
    """(request key, candidate ids as bytes) -> (request key, table of those ids' rows: id + `columns`), for
    pool part files sorted by `id_column`. A request whose ids are all absent gets no output."""

    def __init__(self, directory: str, schema: pa.Schema, id_column: str, columns: Sequence[str]) -> None:
        super().__init__()
        self._parts = list_parts(directory)
        self._schema, self._id, self._columns = schema, id_column, list(columns)

    def expand(self, requests: beam.PCollection) -> beam.PCollection:
        return (requests
                | "ByPoolPart" >> beam.ParDo(_SplitByPart(first_ids(self._parts, self._id)))
                | "GroupByPoolPart" >> beam.GroupByKey()
                | "AnswerFromPart" >> beam.ParDo(_AnswerFromPart(self._parts, self._schema, self._id, self._columns))
                | "GroupByRequest" >> beam.GroupByKey()
                | "JoinAnswers" >> beam.MapTuple(lambda key, tables: (key, pa.concat_tables(list(tables)))))


def sides_of(tables: Iterable[pa.Table]) -> dict[str, Side]:
    """A request's answered candidate rows as {candidate_id: Side} (the chunk's own candidates only)."""
    out: dict[str, Side] = {}
    for t in tables:
        out.update(zip(t.column("candidate_id").to_pylist(),
                       (Side(text, image) for text, image in zip(t.column("text").to_pylist(),
                                                                 t.column("image").to_pylist()))))
    return out


def one(values: Iterable[Any]) -> Any:
    """The single value a CoGroupByKey gave a key on one side."""
    values = list(values)
    if len(values) != 1:
        raise RuntimeError(f"expected one value for a chunk, got {len(values)}")
    return values[0]
