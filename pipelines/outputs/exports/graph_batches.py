"""Batches from the retrieval graph (B3, "Breaking the Batch Barrier", NeurIPS 2025): queries ordered into batches of a
given size so that a batch's in-batch negatives (the other queries' positives) are, as far as the graph allows,
judged hard negatives of one another, and never a judged false negative of a query in its batch.

The graph is what the run already holds: a row's kept negatives (`neg_ids`, judged hard negatives) are edges to the
rows whose positive they are; the candidates the mining rule dropped as likely false negatives (the judge stage's
scores under the mine record's rule, beta and relative margin) are forbidden neighbours, both ways, as is a second
row with the same positive. Batches grow greedily: from the first row not yet placed (input order), along its edges
breadth first, then from the next rows in input order that fit. Every batch but the last holds exactly `batch_size`
rows (a trainer that does not shuffle reads them as they are): a seed too few rows fit beside is left out and
counted, and only the last batch, which takes every row left, may be short. Memory: a few Python objects per row
(measured in bench/RESULTS.md), not bounded for 10M rows yet.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass


class _Batch:
    """One batch as it grows: its rows, the rows they forbid, their positives."""

    def __init__(self, placed: list[bool], positives: Sequence[str], forbidden: Sequence[set[int]]) -> None:
        self.members: list[int] = []
        self._blocked: set[int] = set()
        self._taken: set[str] = set()
        self._placed, self._positives, self._forbidden = placed, positives, forbidden

    def fits(self, x: int) -> bool:
        return (not self._placed[x] and x not in self._blocked and self._positives[x] not in self._taken
                and not any(m in self._forbidden[x] for m in self.members))

    def add(self, x: int) -> None:
        self._placed[x] = True
        self.members.append(x)
        self._blocked.update(self._forbidden[x])
        self._taken.add(self._positives[x])


@dataclass
class Batched:
    order: list[int]  # row indices in batch order
    batch: list[int]  # each ordered row's batch number
    left_out: list[int]  # rows no batch could take


def graph_batches(positives: Sequence[str], neighbours: Sequence[Sequence[int]],
                  forbidden: Sequence[set[int]], batch_size: int) -> Batched:
    """`positives[i]`: row i's positive id; `neighbours[i]`: rows whose positive is one of row i's hard
    negatives, in its negatives' order; `forbidden[i]`: rows whose positive is one of row i's false negatives."""
    n = len(positives)
    placed = [False] * n
    out = Batched([], [], [])
    cursor, unplaced = 0, n
    while True:
        while cursor < n and placed[cursor]:
            cursor += 1
        if cursor == n:
            break
        batch = _Batch(placed, positives, forbidden)
        batch.add(cursor)
        frontier = deque(neighbours[cursor])
        while frontier and len(batch.members) < batch_size:
            x = frontier.popleft()
            if batch.fits(x):
                batch.add(x)
                frontier.extend(neighbours[x])
        scan = cursor + 1
        while len(batch.members) < batch_size and scan < n:
            if batch.fits(scan):
                batch.add(scan)
            scan += 1
        if len(batch.members) < batch_size and len(batch.members) < unplaced:
            # too few rows fit beside this seed, and others remain: the seed is left out, its batch undone
            for m in batch.members[1:]:
                placed[m] = False
            out.left_out.append(cursor)
            unplaced -= 1
            continue
        number = out.batch[-1] + 1 if out.batch else 0
        out.order.extend(batch.members)
        out.batch.extend([number] * len(batch.members))
        unplaced -= len(batch.members)
    out.left_out.sort()
    return out
