"""Packed shared-prefix scoring: the packing itself, its exactness against plain prompts for a text judge and a
Qwen2-VL judge (image on the query side, the candidate side, both), the models it refuses, and the same
negatives chosen by a packed and an unpacked run."""
from __future__ import annotations

import json
import logging
import os
import shutil

import numpy as np
import torch
from conftest import run_args

from judgemine.pipelines.cli.parser import main
from judgemine.schemas import JUDGE_SCORES, SHARDS, list_parts, read_table
from judgemine.schemas.layout import RunLayout
from judgemine.transforms.common.sides import Side
from judgemine.transforms.judge.backends.hf_packed import refusal
from judgemine.transforms.judge.backends.transformers import (
    TransformersJudge,
    TransformersOptions,
    TransformersVLMJudge,
)
from judgemine.transforms.judge.base import JudgeModel
from judgemine.transforms.judge.packing import PairTokens, pack, shared_prefix

TEXT_QUERIES = ["Define the word: big", "What is the capital of Kenya?", "The cat is sleeping on the sofa."]
TEXT_TARGETS = ["Of considerable size or extent.", "The capital of Kenya is Nairobi.", "Extremely angry.",
                "The cat is napping on the couch.", "The", "A large body of water surrounded by land."]
TEXT_PAIRS = [(Side(q), Side(t)) for q in TEXT_QUERIES for t in TEXT_TARGETS]
NONE, PREFIX = TransformersOptions("none"), TransformersOptions("prefix")


def _pairs(lengths_and_prefix: list[tuple[int, int]]) -> list[PairTokens]:
    """Pairs whose first `shared` tokens are 0..shared-1 and the rest their own."""
    out = []
    for i, (length, shared) in enumerate(lengths_and_prefix):
        ids = list(range(shared)) + [1000 * (i + 1) + k for k in range(length - shared)]
        out.append(PairTokens(i, [(t, None) for t in ids], torch.arange(length)))
    return out


def test_each_pair_is_its_plain_tokens_and_sees_only_its_prefix_and_itself():
    query_a, query_b = _pairs([(10, 6), (9, 6), (12, 6)]), _pairs([(5, 3), (7, 3)])
    for p in query_b:
        p.pair += 3
    rows = pack([query_a, query_b], budget=100)
    assert len(rows) == 1
    row = rows[0]
    assert len(row) == 6 + 4 + 3 + 6 + 3 + 2 + 4  # one prefix per query, then every suffix
    mask = row.mask()
    plain = {p.pair: [t for t, _ in p.tokens] for p in query_a + query_b}
    for pair, end in zip(row.pairs, row.ends):
        seen = [row.ids[j] for j in range(len(row)) if mask[end, j]]
        assert seen == plain[pair]  # exactly the plain prompt, in order: no re-tokenization, nothing else
        assert row.position_ids()[end].item() == len(plain[pair]) - 1  # at its plain position
    assert row.pairs == [0, 1, 2, 3, 4]


def test_the_budget_splits_rows_and_long_queries():
    pairs = _pairs([(30, 20)] * 4)
    rows = pack([pairs], budget=45)  # prefix 20 + suffixes of 10: two pairs per group
    assert [len(r) for r in rows] == [40, 40] and [r.pairs for r in rows] == [[0, 1], [2, 3]]
    assert shared_prefix([p.tokens for p in _pairs([(4, 4), (4, 4)])]) == 3  # each keeps its answer token


def test_packed_text_scores_equal_plain_ones(tiny_judge):
    model = JudgeModel(tiny_judge, batch_size=4, device="cpu")
    queries, candidates = [q for q, _ in TEXT_PAIRS], [c for _, c in TEXT_PAIRS]
    plain = TransformersJudge(model, NONE).score(queries, candidates)
    for budget in (4096, 200):  # one row for everything; several rows and queries split over groups
        judge = TransformersJudge(model, TransformersOptions("prefix", budget))
        assert np.abs(judge.score(queries, candidates) - plain).max() < 1e-4
        counts = judge.counters()
        assert counts["judge_tokens_plain"] == sum(
            len(judge.tokenizer(judge.prompter.text(q, c), add_special_tokens=False)["input_ids"])
            for q, c in TEXT_PAIRS)
        assert counts["judge_tokens_computed"] < counts["judge_tokens_plain"] / (2 if budget == 4096 else 1.2)


IMAGE_PAIRS = [(Side("<|image_1|>\nWhat animal is this?", "images/chelsea.png"), Side("A cat.")),
               (Side("<|image_1|>\nWhat animal is this?", "images/chelsea.png"), Side("", "images/coffee.png")),
               (Side("<|image_1|>\nWhat animal is this?", "images/chelsea.png"),
                Side("A rocket.", "images/rocket.jpg")),
               (Side("Show a motorbike."), Side("", "images/motorcycle_right.png")),
               (Side("Show a motorbike."), Side("", "images/chelsea.png")),
               (Side("Show a motorbike."), Side("A red motorcycle.")),
               (Side("<|image_1|>\nCaption it.", "images/rocket.jpg"), Side("", "images/rocket.jpg")),
               (Side("<|image_1|>\nCaption it.", "images/rocket.jpg"), Side("A rocket on its pad."))]


def test_packed_vision_scores_equal_plain_ones_with_images_on_either_side(tiny_vlm, image_root):
    model = JudgeModel(tiny_vlm, batch_size=3, device="cpu", image_root=image_root)
    queries, candidates = [q for q, _ in IMAGE_PAIRS], [c for _, c in IMAGE_PAIRS]
    plain = TransformersVLMJudge(model, NONE).score(queries, candidates)
    judge = TransformersVLMJudge(model, PREFIX)
    packed = judge.score(queries, candidates)
    assert np.abs(packed - plain).max() < 1e-4 and len({round(float(s), 5) for s in packed}) > 4
    rows = judge.vision_rows
    assert rows is not None and rows.encoded == 4  # chelsea, coffee, rocket, motorcycle: each through the tower once
    assert judge.counters()["judge_tokens_computed"] < judge.counters()["judge_tokens_plain"]
    judge.score(queries, candidates)
    assert rows.encoded == 4  # still cached


def test_models_that_cannot_be_packed_are_scored_plain_and_say_why(tiny_judge, tiny_idefics3, image_root, caplog):
    with caplog.at_level(logging.WARNING, logger="judgemine"):
        idefics = TransformersVLMJudge(JudgeModel(tiny_idefics3, device="cpu", image_root=image_root), PREFIX)
    assert idefics.packer is None and "Qwen2-VL-family judges only" in caplog.text
    judge = TransformersJudge(JudgeModel(tiny_judge, device="cpu"), PREFIX)
    assert refusal(judge.model) == "" and judge.packer is not None
    judge.model.config._attn_implementation = "eager"  # a kernel that takes no custom mask
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="judgemine"):
        assert judge._packer(PREFIX, refusal(judge.model), "cpu") is None
    assert "packing refused for this model" in caplog.text and "'eager'" in caplog.text
    plain = TransformersJudge(JudgeModel(tiny_judge, device="cpu"), NONE)
    assert plain.packer is None and plain.counters() == {}


def _shards(out: str) -> dict:
    parts = list_parts(os.path.join(out, "shards"))
    return {r["query_id"]: r for p in parts for r in read_table(p, SHARDS).to_pylist()}


def test_a_packed_and_an_unpacked_run_choose_the_same_negatives(e2e_run, small_pairs, tiny_judge, tmp_path):
    """e2e_run judged with the default (prefix); the same run judged with none, then mined again."""
    packed = json.load(open(RunLayout(e2e_run).stage("judge").record))["counts"]
    assert packed["judge_tokens_computed"] * 2 < packed["judge_tokens_plain"]
    out = str(tmp_path / "none")
    shutil.copytree(e2e_run, out)
    args = run_args(out, small_pairs, tiny_judge, "--judge-packing", "none", "--judge-cache", out + "-cache")
    assert main(["judge", *args]) == 0 and main(["mine", *args]) == 0
    scores = {}
    for run in (e2e_run, out):
        scores[run] = {(r["query_id"], r["candidate_id"], r["is_positive"]): r["score"]
                       for p in list_parts(RunLayout(run).stage("judge").path)
                       for r in read_table(p, JUDGE_SCORES).to_pylist()}
    assert max(abs(scores[e2e_run][k] - scores[out][k]) for k in scores[out]) < 1e-4
    a, b = _shards(e2e_run), _shards(out)
    assert a.keys() == b.keys()
    for qid in a:
        if a[qid]["neg_ids"] != b[qid]["neg_ids"]:  # only where a score sits at its query's threshold
            threshold = a[qid]["pos_score"] - 0.01
            near = [s for (q, _, pos), s in scores[out].items() if q == qid and not pos and abs(s - threshold) < 1e-4]
            assert near, qid
