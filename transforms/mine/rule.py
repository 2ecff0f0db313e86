"""The UniME-V2 mining rule (docs/SPEC.md section 5): false-negative filter, then cyclical sampling."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

import numpy as np

OnNoNegatives = Literal["fallback", "reject"]


@dataclass(frozen=True)
class MiningRule:
    """The rule's settings: m, beta, the sampling step, the seed, and what to do when the filter leaves nothing
    (the paper's fallback, or reject the query)."""
    num_negatives: int = 10
    beta: float = 0.01
    step: int = 5
    seed: int = 0
    on_no_negatives: OnNoNegatives = "fallback"


@dataclass(frozen=True)
class Selection:
    """Positions into the query's retrieved candidates (rank order), and whether the n = 0 rule applied."""
    positions: tuple[int, ...]
    fallback: bool
    kept_after_filter: int


class NoCandidates(ValueError):
    """Nothing was retrieved for the query, so no rule can pick negatives."""


def passes_filter(score: float, pos_score: float, beta: float) -> bool:
    """A candidate is a likely false negative when s > s_pos - beta; one exactly at the threshold stays."""
    return not score > pos_score - beta


def cyclical_positions(n: int, m: int, step: int) -> list[int]:
    """Positions 0, step, 2*step, ...; then 1, 1+step, ...; until m are picked or all n used. When 0 < n < m,
    all n in order, repeated cyclically up to m."""
    if n <= 0:
        return []
    if n < m:
        return [i % n for i in range(m)]
    picked: list[int] = []
    for offset in range(step):
        for pos in range(offset, n, step):
            picked.append(pos)
            if len(picked) == m:
                return picked
    return picked


def query_rng(seed: int, query_id: str) -> np.random.Generator:
    """A generator per query, independent of how queries are chunked or ordered."""
    digest = int.from_bytes(hashlib.sha256(query_id.encode()).digest()[:8], "little")
    return np.random.default_rng([seed, digest])


def select_negatives(scores: list[float], pos_score: float, m: int, beta: float, step: int,
                     rng: np.random.Generator) -> Selection:
    """`scores` are the judge scores of the K retrieved candidates in rank order."""
    if not scores:
        raise NoCandidates("no candidates were retrieved")
    kept = [i for i, s in enumerate(scores) if passes_filter(s, pos_score, beta)]
    if kept:
        return Selection(tuple(kept[p] for p in cyclical_positions(len(kept), m, step)), False, len(kept))
    order = rng.permutation(len(scores)).tolist()
    return Selection(tuple(order[i % len(order)] for i in range(m)), True, 0)
