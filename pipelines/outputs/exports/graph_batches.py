"""Batches from the retrieval graph (B3, "Breaking the Batch Barrier", NeurIPS 2025): queries ordered into batches of a
given size so that a batch's in-batch negatives (the other queries' positives) are, as far as the graph allows,
judged hard negatives of one another, and never a judged false negative of a query in its batch.

Rows are grouped by their positive (rows with one positive never share a batch: each would be the other's false
negative). The graph is what the run already holds: a row's kept negatives (judged hard negatives) are edges to the
first row whose positive they are; the candidates the mining rule dropped as likely false negatives are forbidden
pairs of groups, both ways. A batch grows from the first row not yet placed (input order): breadth first along its
edges, then rows set aside earlier, then the next rows in input order, each taken if it fits. A batch that cannot be
filled is undone and its seed set aside, to join a later batch; a row set aside that again seeds a batch too few rows
fit beside is left out and counted. So every batch but the last is full (a trainer that does not shuffle reads them
as they are), and only rows that conflict with nearly every row left are left out.

Memory is bounded by arrays, not Python objects per row: the graph's own arrays (read in place through memoryviews),
a byte of state and 8 bytes of order a row, 8 bytes of stamps a group; the work per batch is bounded by `window`
(rows looked at beyond the batch's own size).
"""
from __future__ import annotations

from array import array
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

UNPLACED, PLACED, SET_ASIDE, LEFT_OUT = 0, 1, 2, 3


@dataclass(frozen=True)
class Graph:
    """`group[i]`: row i's positive as a group number; `neighbours`: CSR (ptr over rows, row indices) of each row's
    hard negatives' owners in its negatives' order; `forbidden`: CSR (ptr over groups, group numbers), symmetric."""
    group: np.ndarray
    neighbour_ptr: np.ndarray
    neighbours: np.ndarray
    forbidden_ptr: np.ndarray
    forbidden: np.ndarray

    @classmethod
    def from_lists(cls, positives: Sequence[str], neighbours: Sequence[Sequence[int]],
                   forbidden_rows: Sequence[Sequence[int]]) -> Graph:
        """Small graphs from Python lists (tests): `forbidden_rows[i]`, rows whose positive row i must not meet."""
        _, group = np.unique(np.asarray(positives, dtype=object).astype(str), return_inverse=True)
        group = group.astype(np.int32)
        pairs = np.asarray([(group[i], group[j]) for i, rows in enumerate(forbidden_rows) for j in rows],
                           np.int32).reshape(-1, 2)
        return cls(group, *csr([len(x) for x in neighbours], [j for x in neighbours for j in x]),
                   *forbidden_csr(pairs, int(group.max()) + 1 if len(group) else 0))


def csr(counts: Sequence[int] | np.ndarray, values: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ptr = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(np.asarray(counts, np.int64), out=ptr[1:])
    return ptr, np.asarray(values, np.int32)


def forbidden_csr(pairs: np.ndarray, groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric CSR over groups from (a, b) pairs: each pair both ways, once (about 40 bytes a pair at its peak)."""
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    keys = np.empty(2 * len(pairs), np.int64)
    a, b = keys[:len(pairs)], keys[len(pairs):]
    a[:] = pairs[:, 0]
    a <<= 32
    a |= pairs[:, 1]
    b[:] = pairs[:, 1]
    b <<= 32
    b |= pairs[:, 0]
    keys.sort()
    keep = np.empty(len(keys), bool)
    keep[:1] = True
    np.not_equal(keys[1:], keys[:-1], out=keep[1:])
    keys = keys[keep]
    del keep
    ptr = csr(np.bincount(keys >> 32, minlength=groups), [])[0]
    keys &= 0xFFFFFFFF
    return ptr, keys.astype(np.int32)


@dataclass
class Batched:
    order: np.ndarray  # row indices in batch order (int32)
    batch: np.ndarray  # each ordered row's batch number (int32)
    left_out: np.ndarray  # rows no batch could take, ascending (int32)


class _Batcher:
    """The arrays a batching works on; a batch attempt stamps the groups it takes and the groups they forbid."""

    def __init__(self, graph: Graph) -> None:
        # memoryviews of the graph's own arrays: item access as fast as a list's, no copy
        self.group = np.ascontiguousarray(graph.group, np.int32).data
        self.nptr = np.ascontiguousarray(graph.neighbour_ptr, np.int64).data
        self.nidx = np.ascontiguousarray(graph.neighbours, np.int32).data
        self.fptr = np.ascontiguousarray(graph.forbidden_ptr, np.int64).data
        self.fidx = np.ascontiguousarray(graph.forbidden, np.int32).data
        groups = len(self.fptr) - 1
        self.state = bytearray(len(self.group))
        self.taken = np.full(groups, -1, np.int32).data
        self.blocked = np.full(groups, -1, np.int32).data
        self.attempt = 0
        self.members: list[int] = []

    def start(self, seed: int) -> None:
        self.attempt += 1
        self.members = []
        self.add(seed)

    def fits(self, x: int) -> bool:
        g = self.group[x]
        return self.taken[g] != self.attempt and self.blocked[g] != self.attempt

    def add(self, x: int) -> None:
        g, attempt, blocked = self.group[x], self.attempt, self.blocked
        self.taken[g] = attempt
        for h in self.fidx[self.fptr[g]:self.fptr[g + 1]]:
            blocked[h] = attempt
        self.members.append(x)
        self.state[x] = PLACED

    def neighbours(self, x: int) -> memoryview:
        return self.nidx[self.nptr[x]:self.nptr[x + 1]]


def graph_batches(graph: Graph, batch_size: int, window: int | None = None) -> Batched:
    """Rows in batch order. `window`: rows a batch looks at beyond its size in each of its three sources
    (default 16 batch sizes), which bounds the work of a batch whatever the conflicts."""
    window = 16 * batch_size if window is None else window
    b = _Batcher(graph)
    n, state = len(b.group), b.state
    order, numbers, left_out = array("i"), array("i"), array("i")
    aside: deque[int] = deque()
    remaining, cursor, number = n, 0, 0
    while remaining:
        while cursor < n and state[cursor] != UNPLACED:
            cursor += 1
        seed = cursor if cursor < n else aside.popleft()
        seeded_aside = state[seed] == SET_ASIDE
        b.start(seed)
        members, from_aside = b.members, []
        frontier, looked = deque(b.neighbours(seed)), 0
        while frontier and len(members) < batch_size and looked < window:
            x = frontier.popleft()
            looked += 1
            if state[x] == UNPLACED and b.fits(x):
                b.add(x)
                frontier.extend(b.neighbours(x))
        for _ in range(min(len(aside), window)):
            if len(members) == batch_size:
                break
            x = aside.popleft()
            if b.fits(x):
                b.add(x)
                from_aside.append(x)
            else:
                aside.append(x)
        scan, looked = cursor + 1, 0
        while len(members) < batch_size and scan < n and looked < window:
            if state[scan] == UNPLACED:
                looked += 1
                if b.fits(scan):
                    b.add(scan)
            scan += 1
        if len(members) == batch_size or len(members) == remaining:
            order.extend(members)
            numbers.extend([number] * len(members))
            number += 1
            remaining -= len(members)
            continue
        for x in members:  # too few fit beside this seed: undone; its members go back where they came from
            state[x] = UNPLACED
        for x in from_aside:
            state[x] = SET_ASIDE
            aside.append(x)
        if seeded_aside:
            state[seed] = LEFT_OUT
            left_out.append(seed)
            remaining -= 1
        else:
            state[seed] = SET_ASIDE
            aside.append(seed)
    return Batched(np.frombuffer(order, np.int32).copy(), np.frombuffer(numbers, np.int32).copy(),
                   np.sort(np.frombuffer(left_out, np.int32)))
