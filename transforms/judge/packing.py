"""Packed shared-prefix scoring, the model-free part: a query's pairs share the start of their prompts (template,
instruction, query text and image), so each query becomes one packed sequence, the shared prefix once followed
by every pair's own suffix, scored in one forward pass under a mask where each suffix sees the prefix and itself
only, every token at the position it has in its own plain prompt.

Exact by construction: the split is made on each pair's plain token sequence (no re-tokenization), at the
longest prefix that all the query's pairs share token for token, and image for image (an image token is keyed by
the image it belongs to, so two candidates' pictures never count as shared). Several queries share one packed
row up to a token budget, block-diagonal between them; a query longer than the budget is split into several
groups, each with its own copy of the prefix.
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import torch

Keyed = tuple[int, Hashable]  # (token id, the image the token belongs to, or None)


@dataclass
class PairTokens:
    """One pair's plain prompt: its keyed tokens and each token's position ids ((n,) or (3, n) for M-RoPE)."""
    pair: int
    tokens: list[Keyed]
    positions: torch.Tensor


@dataclass
class PackedRow:
    """A packed sequence: token ids, their position ids, segment ids for the mask, the index of the last token of
    each pair's suffix (where its answer logits are read) and the pairs in that order; images in occurrence order."""
    ids: list[int] = field(default_factory=list)
    positions: list[torch.Tensor] = field(default_factory=list)
    groups: list[int] = field(default_factory=list)
    suffixes: list[int] = field(default_factory=list)  # -1 on prefix tokens
    ends: list[int] = field(default_factory=list)
    pairs: list[int] = field(default_factory=list)
    images: list[Hashable] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    def position_ids(self) -> torch.Tensor:
        return torch.cat(self.positions, dim=-1)

    def mask(self) -> torch.Tensor:
        """(L, L) boolean, True = may attend: same group, not ahead, and the key is prefix or the same suffix."""
        group, suffix = torch.tensor(self.groups), torch.tensor(self.suffixes)
        idx = torch.arange(len(self.ids))
        return ((group[:, None] == group[None, :]) & (idx[None, :] <= idx[:, None])
                & ((suffix[None, :] == -1) | (suffix[None, :] == suffix[:, None])))


def shared_prefix(sequences: Sequence[list[Keyed]]) -> int:
    """Length of the longest common prefix, leaving every sequence at least one token of its own (the token whose
    logits give its answer)."""
    limit = min(len(s) for s in sequences) - 1
    n = 0
    first = sequences[0]
    while n < limit and all(s[n] == first[n] for s in sequences):
        n += 1
    return n


def _images_in(tokens: Sequence[Keyed]) -> list[Hashable]:
    """The images of a token run in order of first appearance (an image's tokens are contiguous)."""
    seen: list[Hashable] = []
    for _, key in tokens:
        if key is not None and (not seen or seen[-1] != key):
            seen.append(key)
    return seen


def pack(queries: Sequence[Sequence[PairTokens]], budget: int) -> list[PackedRow]:
    """Rows of at most `budget` tokens (or one query group, when a single group is longer), in query order."""
    rows: list[PackedRow] = []
    group_id = 0
    for pairs in queries:
        n = shared_prefix([p.tokens for p in pairs])
        groups: list[list[PairTokens]] = [[]]
        size = n
        for p in pairs:  # a query longer than the budget becomes several groups, each with its own prefix
            own = len(p.tokens) - n
            if groups[-1] and size + own > budget:
                groups.append([])
                size = n
            groups[-1].append(p)
            size += own
        for group in groups:
            length = n + sum(len(p.tokens) - n for p in group)
            if not rows or len(rows[-1]) + length > budget:
                rows.append(PackedRow())
            _append(rows[-1], group, n, group_id)
            group_id += 1
    return rows


def _append(row: PackedRow, group: Sequence[PairTokens], n: int, group_id: int) -> None:
    head = group[0]
    row.ids += [t for t, _ in head.tokens[:n]]
    row.positions.append(head.positions[..., :n])
    row.images += _images_in(head.tokens[:n])
    row.groups += [group_id] * n
    row.suffixes += [-1] * n
    for s, p in enumerate(group):
        own = p.tokens[n:]
        row.ids += [t for t, _ in own]
        row.positions.append(p.positions[..., n:])
        row.images += _images_in(own)
        row.groups += [group_id] * len(own)
        row.suffixes += [s] * len(own)
        row.ends.append(len(row.ids) - 1)
        row.pairs.append(p.pair)


def by_query(keys: Sequence[Hashable]) -> list[list[int]]:
    """Pair indices grouped by query, in first-appearance order (a chunk holds each query's pairs together)."""
    groups: dict[Hashable, list[int]] = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, []).append(i)
    return list(groups.values())
