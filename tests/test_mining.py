"""The mining rule of docs/SPEC.md section 5, table-driven."""
from __future__ import annotations

import numpy as np
import pytest

from judgemine.transforms.mine.rule import (
    MiningRule,
    NoCandidates,
    cyclical_positions,
    extra_positives,
    passes_filter,
    query_rng,
    select_negatives,
)


def _select(scores, pos_score, m, beta=None, step=5, rng=None, **rule):
    return select_negatives(scores, pos_score, MiningRule(num_negatives=m, beta=beta, step=step, **rule),
                            rng or query_rng(0, "q"))


@pytest.mark.parametrize("n,m,step,expected", [
    (50, 10, 5, [0, 5, 10, 15, 20, 25, 30, 35, 40, 45]),
    (12, 10, 5, [0, 5, 10, 1, 6, 11, 2, 7, 3, 8]),
    (10, 10, 5, [0, 5, 1, 6, 2, 7, 3, 8, 4, 9]),
    (7, 3, 2, [0, 2, 4]),
    (3, 10, 5, [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]),   # 0 < n < m: all n in order, then cyclically
    (1, 4, 5, [0, 0, 0, 0]),
    (0, 10, 5, []),
])
def test_cyclical_positions(n, m, step, expected):
    assert cyclical_positions(n, m, step) == expected


def test_filter_keeps_a_score_exactly_at_the_threshold():
    # 0.75 - 0.25 = 0.5 exactly in binary floating point.
    assert passes_filter(0.5, 0.75, 0.25)
    assert not passes_filter(np.nextafter(0.5, 1.0), 0.75, 0.25)
    assert passes_filter(np.nextafter(0.5, 0.0), 0.75, 0.25)


def test_false_negatives_are_dropped_before_sampling():
    scores = [0.9, 0.2, 0.85, 0.1, 0.3, 0.05, 0.7]
    sel = _select(scores, 0.8, m=3, beta=0.1, step=2)
    # kept (s <= 0.7): ranks 1, 3, 4, 5, 6 -> cyclical positions 0, 2, 4 of the kept list
    assert sel.positions == (1, 4, 6) and not sel.fallback and sel.kept_after_filter == 5


def test_fewer_kept_than_m_repeats_in_order():
    sel = _select([0.9, 0.1, 0.95, 0.2], 0.5, m=5, beta=0.01)
    assert sel.positions == (1, 3, 1, 3, 1) and not sel.fallback


def test_nothing_kept_falls_back_to_seeded_random_candidates():
    scores = [0.99] * 6
    a = _select(scores, 0.5, m=4, beta=0.01, rng=query_rng(7, "q1"))
    b = _select(scores, 0.5, m=4, beta=0.01, rng=query_rng(7, "q1"))
    assert a.fallback and a.kept_after_filter == 0
    assert a.positions == b.positions and len(set(a.positions)) == 4
    assert all(0 <= p < 6 for p in a.positions)
    assert list(a.positions) == query_rng(7, "q1").permutation(6).tolist()[:4]


def test_fallback_with_fewer_candidates_than_m_cycles_them():
    sel = _select([0.9, 0.95], 0.5, m=5, beta=0.01)
    assert sel.fallback and sorted(set(sel.positions)) == [0, 1] and len(sel.positions) == 5


def test_no_candidates_is_an_error_not_an_empty_row():
    with pytest.raises(NoCandidates):
        _select([], 0.5, m=3, beta=0.01)


# The positive-aware rules (sentence-transformers' names), each against a hand-computed case. Scores are in
# retrieval order; s_pos = 0.8 unless given. Expected: the positions picked, then what each filter removed.
RULES = [
    # unset beta = the paper's 0.01: keep s <= 0.79 (0.79 stays, 0.8 goes)
    ("paper default", [0.8, 0.79, 0.5, 0.3], 0.8, dict(m=2, step=1), (1, 2), {"beta": 1}),
    # the same rule by its sentence-transformers name, and beta = 0 keeps s <= s_pos
    ("absolute 0", [0.81, 0.8, 0.5], 0.8, dict(m=2, step=1, beta=0.0), (1, 2), {"beta": 1}),
    # relative 0.05 of 0.8: threshold 0.76; with a relative margin alone the paper's beta does not apply
    ("relative", [0.77, 0.76, 0.785, 0.2], 0.8, dict(m=2, step=1, relative_margin=0.05), (1, 3),
     {"relative_margin": 2}),
    # a negative s_pos: threshold -0.5 - 0.5 * 0.1 = -0.55 (sign-safe, not -0.5 * 0.9 = -0.45)
    ("relative, negative positive", [-0.5, -0.54, -0.56, -0.9], -0.5, dict(m=2, step=1, relative_margin=0.1),
     (2, 3), {"relative_margin": 2}),
    # both margins: absolute 0.3 (keep <= 0.5) is stricter here than relative 0.05 (keep <= 0.76)
    ("both margins", [0.7, 0.6, 0.5, 0.1], 0.8, dict(m=2, step=1, beta=0.3, relative_margin=0.05), (2, 3),
     {"beta": 2}),
    ("max score", [0.7, 0.6, 0.5, 0.1], 0.8, dict(m=2, step=1, max_score=0.55), (2, 3),
     {"max_score": 2}),
    ("min score", [0.7, 0.6, 0.5, 0.1], 0.8, dict(m=3, step=1, min_score=0.5), (0, 1, 2), {"min_score": 1}),
    # range_min skips retrieval ranks 0 and 1 before anything else (and they are not counted twice)
    ("range min", [0.9, 0.6, 0.5, 0.4, 0.3], 0.8, dict(m=2, step=1, range_min=2), (2, 3), {"range_min": 2}),
    # each filter counts only what it removed first: rank 0 goes to range_min, rank 1 to the margin
    ("counted once", [0.95, 0.9, 0.5, 0.05], 0.8, dict(m=1, step=1, range_min=1, min_score=0.1), (2,),
     {"range_min": 1, "beta": 1, "min_score": 1}),
    # top: the highest scores among those left, listed highest first (not in retrieval order)
    ("top", [0.3, 0.6, 0.5, 0.7, 0.1], 0.8, dict(m=3, sampling="top"), (3, 1, 2), {}),
    # top with ties: equal scores keep their retrieval order
    ("top ties", [0.4, 0.6, 0.4, 0.6], 0.8, dict(m=3, sampling="top"), (1, 3, 0), {}),
    # cyclical with step 2 over the kept ranks 1, 2, 3, 4: positions 0, 2, then 1
    ("cyclical", [0.9, 0.6, 0.5, 0.7, 0.1], 0.8, dict(m=3, step=2), (1, 3, 2), {"beta": 1}),
    # fewer left than m: top repeats them cyclically, highest first, never drops the query
    ("top short", [0.9, 0.2, 0.5], 0.8, dict(m=4, sampling="top"), (2, 1, 2, 1), {"beta": 1}),
]


@pytest.mark.parametrize("name,scores,pos,rule,positions,skipped", RULES, ids=[r[0] for r in RULES])
def test_rules(name, scores, pos, rule, positions, skipped):
    sel = _select(scores, pos, **rule)
    assert sel.positions == positions
    assert {k: v for k, v in sel.skipped.items() if v} == skipped
    assert not sel.fallback


def test_random_sampling_is_seeded_per_query_and_draws_from_those_left():
    scores = [0.95] + [0.5 - i / 100 for i in range(20)]  # rank 0 is above the margin
    a = _select(scores, 0.8, m=5, sampling="random", rng=query_rng(3, "q7"))
    b = _select(scores, 0.8, m=5, sampling="random", rng=query_rng(3, "q7"))
    c = _select(scores, 0.8, m=5, sampling="random", rng=query_rng(3, "q8"))
    assert a.positions == b.positions and a.positions != c.positions
    assert 0 not in a.positions and len(set(a.positions)) == 5
    assert list(a.positions) == sorted(a.positions)  # by score, highest first = rank order here
    expected = sorted(1 + p for p in query_rng(3, "q7").choice(20, size=5, replace=False).tolist())
    assert list(a.positions) == expected


def test_everything_filtered_falls_back_or_rejects_as_the_paper_says():
    sel = _select([0.9, 0.85], 0.8, m=3, max_score=0.1)
    assert sel.fallback and sel.kept_after_filter == 0 and len(sel.positions) == 3


@pytest.mark.slow
def test_the_report_beta_sweep_applies_the_mine_stage_predicate_to_random_scores(tmp_path):
    """Random 3-decimal judge scores, swept through the report's table and through the mine stage's rule one
    query at a time: for every beta, the same candidates removed, the same queries left with none or fewer than
    m. The data puts candidates on every beta's threshold, where a re-derived filter (the old sweep's
`s - s_pos > -beta`) can round the other way."""
    import pyarrow as pa

    from judgemine.pipelines.outputs.report.sweep import BETAS, beta_sweep
    from judgemine.schemas import JUDGE_SCORES, write_table
    from judgemine.schemas.layout import RunLayout
    rng = np.random.default_rng(7)
    queries, k, m = 3000, 12, 4
    pos = rng.integers(0, 1000, queries) / 1000
    cand = np.clip(pos[:, None] + rng.integers(-60, 30, (queries, k)) / 1000, 0, 1).astype(np.float32)
    pos = pos.astype(np.float32)
    rows = {"query_id": [], "candidate_id": [], "is_positive": [], "score": []}
    for q in range(queries):
        rows["query_id"] += [f"q{q}"] * (k + 1)
        rows["candidate_id"] += [f"p{q}", *(f"c{q}-{i}" for i in range(k))]
        rows["is_positive"] += [True] + [False] * k
        rows["score"] += [float(pos[q]), *cand[q].tolist()]
    write_table(pa.table(rows, schema=JUDGE_SCORES), RunLayout(str(tmp_path)).stage("judge").own_part(0),
                JUDGE_SCORES)
    s, p = cand.astype(np.float64), pos.astype(np.float64)[:, None]
    assert all((np.abs(s - (p - b)) < 1e-6).sum() > 100 for b in BETAS if b <= 0.05)
    for row in beta_sweep(str(tmp_path), m):
        rule = MiningRule(num_negatives=m, beta=row["beta"], step=1)
        picks = [select_negatives(s[q].tolist(), float(p[q, 0]), rule, query_rng(0, f"q{q}")) for q in range(queries)]
        assert row["removed"] == sum(sel.skipped["beta"] for sel in picks)
        assert row["no_negatives_left"] == sum(sel.fallback for sel in picks)
        assert row["fewer_than_m"] == sum(0 < sel.kept_after_filter < m for sel in picks)
        assert row["mean_kept"] == pytest.approx(np.mean([sel.kept_after_filter for sel in picks]))


def test_extra_positives_are_the_candidates_at_or_above_the_positive_highest_first():
    assert extra_positives([0.2, 0.9, 0.5, 0.9, 0.49], 0.5) == [1, 3, 2]
    assert extra_positives([0.1, 0.2], 0.5) == []


def test_false_negatives_as_positives_writes_them_beside_the_negatives_and_into_flagembedding(e2e_run, small_pairs,
                                                                                            tiny_judge, tmp_path):
    """On a copy of the small run, only mine reruns with the setting; each row's extra positives are exactly the
    query's judged candidates scored at or above its positive (the judge stage's own scores), highest first,
    never among its negatives (outside fallback rows, whose random negatives may be any candidate); FlagEmbedding's
    `pos` lists them after the positive. Without the setting the lists are empty."""
    import json
    import os
    import shutil

    import pyarrow.parquet as pq
    from conftest import run_args

    from judgemine.pipelines.cli.parser import main

    def rows(out: str) -> list[dict]:
        return pq.read_table(os.path.join(out, "shards")).to_pylist()

    assert all(not r["extra_pos_ids"] for r in rows(e2e_run))
    out = str(tmp_path / "copy")
    shutil.copytree(e2e_run, out)
    assert main(["run", *run_args(out, small_pairs, tiny_judge), "--false-negatives-as-positives"]) == 0
    judge = os.path.join(out, "stages", "judge")
    judged = [j for name in sorted(os.listdir(judge)) if name.endswith(".parquet")
              for j in pq.read_table(os.path.join(judge, name)).to_pylist()]
    scores = {(j["query_id"], j["candidate_id"], j["is_positive"]): j["score"] for j in judged}
    found = 0
    for r in rows(out):
        above = sorted(((s, c) for (q, c, pos), s in scores.items() if q == r["query_id"] and not pos
                        and s >= r["pos_score"]), key=lambda sc: -sc[0])
        assert r["extra_pos_scores"] == [s for s, _ in above] and set(r["extra_pos_ids"]) == {c for _, c in above}
        assert r["fallback"] or not set(r["extra_pos_ids"]) & set(r["neg_ids"])
        found += len(r["extra_pos_ids"])
    assert found > 0  # the tiny judge scores some candidates above their positives
    assert main(["export", "--output", out, "--format", "flagembedding"]) == 0
    with open(os.path.join(out, "export", "flagembedding.jsonl"), encoding="utf-8") as f:
        lines = [json.loads(line) for line in f]
    kept = [r for r in rows(out) if not r["fallback"]]  # the export streams the shards in order
    assert len(lines) == len(kept)
    for line, r in zip(lines, kept):
        assert line["query"] == r["query_text"] and line["pos"] == [r["pos_text"], *r["extra_pos_texts"]]
        assert line["pos_scores"] == pytest.approx([r["pos_score"], *r["extra_pos_scores"]])
