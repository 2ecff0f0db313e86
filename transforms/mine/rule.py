"""The mining rules: UniME-V2's (docs/SPEC.md section 5: false-negative filter, then cyclical sampling) and
the positive-aware rules of sentence-transformers' `mine_hard_negatives` (NV-Retriever's margins), under the
names that library gives them. One filter, then one sampling:

- range_min: the first `range_min` retrieved candidates (retrieval ranks 0..range_min-1) are skipped;
- beta (the paper's absolute margin): keep s <= s_pos - margin; one exactly at the threshold stays;
- relative margin: keep s <= s_pos - |s_pos| * r (= s_pos * (1 - r) for a positive s_pos; sign-safe as
  sentence-transformers computes it);
- max_score / min_score: keep min_score <= s <= max_score;
- sampling: cyclical (the paper's, in retrieval order), top (the highest scores) or random (seeded per
  query); top and random list their picks by score, highest first, as sentence-transformers does.

Each filter counts the candidates it alone removed, in that order (a candidate removed by an earlier filter
is not counted again). With fewer than m left a query is never dropped: 0 < n < m repeats them cyclically,
n = 0 takes the paper's fallback or goes to the rejects (`on_no_negatives`)."""
from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from judgemine.transforms.common.options import above, at_least, setting
from judgemine.transforms.common.seed import Seeded

OnNoNegatives = Literal["fallback", "reject"]
Sampling = Literal["cyclical", "top", "random"]
PAPER_BETA = 0.01
FILTERS = ("range_min", "beta", "relative_margin", "max_score", "min_score")


@dataclass(frozen=True)
class MiningRule(Seeded):
    """The mine stage's settings are the rule: each field is declared here once, as a run setting (flag, YAML
    key, fingerprint of the mine stage), and composed into the run's Settings (pipelines/settings.py); its seed
    (transforms/common/seed.py) is the index stage's too."""
    num_negatives: int = setting(10, ("mine",), "hard negatives kept per query (m)", group="mine", range=above(0))
    beta: float | None = setting(None, ("mine",), "the paper's absolute margin: drop candidates scored above "
                                 "s_pos - beta; unset = 0.01, or none when --relative-margin is given; 0 = the "
                                 "weakest (keep s <= s_pos)", group="mine", switchable=False, range=at_least(0))
    relative_margin: float | None = setting(None, ("mine",), "relative margin (NV-Retriever): drop candidates "
                                            "scored above s_pos - |s_pos| * r; 0.05 = NV-Retriever's TopK-PercPos "
                                            "(95 percent)", group="mine", range=at_least(0))
    max_score: float | None = setting(None, ("mine",), "drop candidates scored above this", group="mine")
    min_score: float | None = setting(None, ("mine",), "drop candidates scored below this", group="mine")
    range_min: int = setting(0, ("mine",), "skip the first N retrieved candidates (retrieval ranks 0..N-1)",
                             group="mine", range=at_least(0))
    sampling: Sampling = setting("cyclical", ("mine",), "how m negatives are taken from those left: cyclical (the "
                                 "paper's, in retrieval order), top (highest scores), random (seeded)", group="mine")
    step: int = setting(5, ("mine",), "cyclical sampling step over the filtered candidates",
                        group="mine", range=above(0))
    on_no_negatives: OnNoNegatives = setting("fallback", ("mine",), "when the filter leaves nothing: fallback "
                                             "(paper) or reject", group="mine")
    false_negatives_as_positives: bool = setting(False, ("mine",), "also write the candidates the judge scored at "
                                                 "or above the query's positive as extra positives, with their "
                                                 "scores (RLHN: relabel false negatives, do not only drop them); "
                                                 "exports that carry several positives use them", group="mine")

    @property
    def applied_beta(self) -> float | None:
        """beta as the filter applies it: the paper's 0.01 when unset, none when only a relative margin is given."""
        if self.beta is not None:
            return self.beta
        return None if self.relative_margin is not None else PAPER_BETA

    @classmethod
    def of(cls, settings: Any) -> MiningRule:
        """The rule out of the run's settings (which hold every field of it)."""
        return cls(**{f.name: getattr(settings, f.name) for f in dataclasses.fields(cls)})


@dataclass(frozen=True)
class Selection:
    """Positions into the query's retrieved candidates (rank order), whether the n = 0 rule applied, how
    many passed the filter, and how many each filter removed."""
    positions: tuple[int, ...]
    fallback: bool
    kept_after_filter: int
    skipped: dict[str, int]


class NoCandidates(ValueError):
    """Nothing was retrieved for the query, so no rule can pick negatives."""


def passes_filter(score: float | np.ndarray, pos_score: float | np.ndarray, beta: float) -> np.ndarray:
    """A candidate is a likely false negative when s > s_pos - beta; one exactly at the threshold stays. The one
    place the paper's filter is computed: the mine stage, the report's beta sweep and the health checks call it."""
    return ~(np.asarray(score) > np.asarray(pos_score) - beta)


def _removed_by(name: str, scores: np.ndarray, pos_score: float | np.ndarray, rule: MiningRule) -> np.ndarray | None:
    """Which candidates (rank order, float64 scores) the filter `name` removes; None when it is off."""
    if name == "range_min":
        return np.arange(len(scores)) < rule.range_min if rule.range_min else None
    if name == "beta":
        beta = rule.applied_beta
        return None if beta is None else ~passes_filter(scores, pos_score, beta)
    if name == "relative_margin":
        return None if rule.relative_margin is None else scores > pos_score - np.abs(pos_score) * rule.relative_margin
    if name == "max_score":
        return None if rule.max_score is None else scores > rule.max_score
    return None if rule.min_score is None else scores < rule.min_score


def likely_false_negatives(scores: np.ndarray, pos_score: float | np.ndarray, rule: MiningRule) -> np.ndarray:
    """The candidates the rule's margins (beta, relative margin) remove as likely false negatives, whatever the
    other filters do (a shard's num_false_negatives counts those the earlier range_min left): what a batch keeps
    apart from its query (graph batches). `pos_score` may be one per candidate (many queries at once)."""
    removed = np.zeros(len(scores), bool)
    for name in ("beta", "relative_margin"):
        mask = _removed_by(name, np.asarray(scores, np.float64), pos_score, rule)
        if mask is not None:
            removed |= mask
    return removed


def extra_positives(scores: list[float], pos_score: float) -> list[int]:
    """Positions of the candidates scored at or above the positive (s >= s_pos: the judge says they answer the
    query as well as its own positive), highest score first, then in retrieval order. A margin above 0 (beta,
    relative margin) removes every one of them from the negatives; beta 0 keeps one scored exactly s_pos."""
    return sorted((i for i, s in enumerate(scores) if s >= pos_score), key=lambda i: (-scores[i], i))


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


def _sample(kept: list[int], scores: list[float], rule: MiningRule,
            rng: Callable[[], np.random.Generator]) -> list[int]:
    """m positions out of `kept` (rank order) by the rule's sampling; fewer than m repeat cyclically."""
    m = rule.num_negatives
    if rule.sampling == "cyclical":
        return [kept[p] for p in cyclical_positions(len(kept), m, rule.step)]
    if rule.sampling == "random" and len(kept) > m:
        kept = [kept[p] for p in sorted(rng().choice(len(kept), size=m, replace=False).tolist())]
    chosen = sorted(kept, key=lambda i: -scores[i])[:m]  # stable: equal scores stay in rank order
    return [chosen[i % len(chosen)] for i in range(m)]


def select_negatives(scores: list[float], pos_score: float, rule: MiningRule,
                     rng: np.random.Generator | Callable[[], np.random.Generator]) -> Selection:
    """`scores` are the judge scores of the retrieved candidates in rank order; `rng` (or a function making
    it, called only when a random choice is made) is the query's generator."""
    if not len(scores):
        raise NoCandidates("no candidates were retrieved")
    values = np.asarray(scores, np.float64)
    skipped = dict.fromkeys(FILTERS, 0)
    left = np.ones(len(values), bool)
    for name in FILTERS:  # each filter counts only what no earlier filter removed
        removed = _removed_by(name, values, pos_score, rule)
        if removed is not None:
            removed &= left
            skipped[name] = int(removed.sum())
            left &= ~removed
    kept = np.flatnonzero(left).tolist()
    generator = (lambda: rng() if callable(rng) else rng)  # noqa: E731 - made once, when needed
    if kept:
        return Selection(tuple(_sample(kept, list(scores), rule, generator)), False, len(kept), skipped)
    order = generator().permutation(len(scores)).tolist()
    return Selection(tuple(order[i % len(order)] for i in range(rule.num_negatives)), True, 0, skipped)
