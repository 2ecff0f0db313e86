"""What another beta would have done, from the committed judge scores alone (no new judging): for each beta of a
sweep, the paper's filter (a candidate is dropped when s > s_pos - beta: the mine stage's own predicate,
`passes_filter`) applied to every judged query, and what that leaves. The paper's beta = 0.01 is tuned to its 7B
judge; another judge's scores sit elsewhere, so a user picks a beta for their judge from this table before
mining again (`--beta`)."""
from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow.compute as pc

from judgemine.schemas import JUDGE_SCORES, list_parts, read_table
from judgemine.schemas.layout import RunLayout
from judgemine.transforms.mine.rule import passes_filter

BETAS = (0.0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3)


def beta_sweep(output: str, m: int, betas: tuple[float, ...] = BETAS) -> list[dict[str, Any]]:
    """Per beta: candidates removed as false negatives (and their share of those judged), queries left with none
    (fallback rows, or rejects with --on-no-negatives reject), queries left with fewer than m (their negatives
    repeat), and the mean candidates kept per query. Queries whose positive has no score are left out, as the
    mine stage rejects them; candidates without a score (prompt too long) are never negatives."""
    removed = np.zeros(len(betas), np.int64)
    none_left = np.zeros(len(betas), np.int64)
    short = np.zeros(len(betas), np.int64)
    kept_total = np.zeros(len(betas), np.int64)
    queries = judged = 0
    for path in list_parts(RunLayout(output).stage("judge").path):
        table = read_table(path, JUDGE_SCORES, ["query_id", "is_positive", "score"])
        codes = pc.dictionary_encode(table.column("query_id")).combine_chunks()
        index = codes.indices.to_numpy(zero_copy_only=False)
        scores = table.column("score").to_numpy(zero_copy_only=False).astype(np.float64)
        positive = table.column("is_positive").to_numpy(zero_copy_only=False)
        s_pos = np.full(len(codes.dictionary), np.nan)
        s_pos[index[positive]] = scores[positive]
        candidate = ~positive & ~np.isnan(scores) & ~np.isnan(s_pos[index])
        n = np.bincount(index[candidate], minlength=len(s_pos))
        counted = (n > 0) & ~np.isnan(s_pos)
        queries += int(counted.sum())
        judged += int(n.sum())
        judged_of, score, pos_score = index[candidate], scores[candidate], s_pos[index[candidate]]
        for b, beta in enumerate(betas):
            dropped = np.bincount(judged_of[~passes_filter(score, pos_score, beta)], minlength=len(s_pos))
            left = (n - dropped)[counted]
            removed[b] += int(dropped.sum())
            none_left[b] += int((left == 0).sum())
            short[b] += int(((left > 0) & (left < m)).sum())
            kept_total[b] += int(left.sum())
    return [{"beta": beta, "removed": int(removed[b]), "removed_share": removed[b] / judged if judged else 0.0,
             "no_negatives_left": int(none_left[b]), "fewer_than_m": int(short[b]),
             "mean_kept": kept_total[b] / queries if queries else 0.0, "queries": queries}
            for b, beta in enumerate(betas)]
