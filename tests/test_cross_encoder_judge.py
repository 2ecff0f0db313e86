"""`--judge-backend cross-encoder`: a CrossEncoder folder as the judge, agreeing with `CrossEncoder.predict`
called directly, batched, pairs over its length refused, image runs refused before judging."""
from __future__ import annotations

import glob
import json
import os

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import MULTIMODAL, SAMPLE, head, run_args

from judgemine.pipelines.cli.parser import main
from judgemine.transforms.common.options import NoOptions
from judgemine.transforms.common.sides import Side
from judgemine.transforms.judge.backends import JUDGES, load_judge
from judgemine.transforms.judge.base import JudgeModel, JudgeSpec


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory) -> str:
    from judgemine.testing.tiny_models import build_tiny_cross_encoder
    texts = [r["query_text"] for r in head(os.path.join(SAMPLE, "definitions.jsonl"), 98)]
    return build_tiny_cross_encoder(str(tmp_path_factory.mktemp("models") / "tiny-ce"), texts, max_length=64)


def _rows(n: int) -> tuple[list[str], list[str]]:
    rows = head(os.path.join(SAMPLE, "definitions.jsonl"), n)
    # every third candidate four times over: longer than the 64 tokens the tiny cross-encoder takes
    return [r["query_text"] for r in rows], [r["pos_text"] * (4 if i % 3 == 0 else 1)
                                             for i, r in enumerate(reversed(rows))]


def test_scores_equal_cross_encoder_predict(tiny_cross_encoder):
    from sentence_transformers import CrossEncoder
    queries, candidates = _rows(40)
    spec = JudgeSpec(JUDGES.get("cross-encoder"), JudgeModel(tiny_cross_encoder, batch_size=7), NoOptions())
    judge = load_judge(spec)
    got = judge.score([Side(q) for q in queries], [Side(c) for c in candidates])
    reference = CrossEncoder(tiny_cross_encoder, device="cpu", local_files_only=True)
    fits = [i for i, (q, c) in enumerate(zip(queries, candidates))
            if len(reference.tokenizer(q, c)["input_ids"]) <= 64]
    assert 0 < len(fits) < len(queries)  # some pairs are over the 64-token limit here
    want = reference.predict([(queries[i], candidates[i]) for i in fits], batch_size=32)
    assert np.abs(got[fits] - want).max() < 1e-5
    assert np.isnan(np.delete(got, fits)).all()  # refused, not truncated
    assert got[fits].std() > 1e-3  # the tiny model's scores are not a constant


def test_pipeline_with_a_cross_encoder_judge(tmp_path, small_pairs, tiny_cross_encoder):
    out = str(tmp_path / "out")
    assert main(["run", *run_args(out, small_pairs, tiny_cross_encoder, "--judge-backend", "cross-encoder")]) == 0
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    counts = manifest["stages"]["judge"]["counts"]
    assert counts["pairs_judged"] > 0 and counts["pairs_too_long"] > 0
    assert manifest["mining"]["rule"]["beta"] == 0.01
    scores = pq.read_table(sorted(glob.glob(os.path.join(out, "stages", "judge", "part-*.parquet")))).to_pylist()
    judged = [s["score"] for s in scores if not np.isnan(s["score"])]
    assert all(0.0 < s < 1.0 for s in judged)  # the sigmoid of the folder's one logit
    assert manifest["accounting"]["balanced"]


def test_image_pairs_are_refused_before_judging(tmp_path, tiny_cross_encoder, image_root, tiny_clip, capsys):
    out = str(tmp_path / "out")
    code = main(["run", "--output", out, "--pairs", os.path.join(MULTIMODAL, "pairs_mmeb.jsonl"),
                 "--image-root", image_root, "--embed-backend", "clip", "--embed-model", tiny_clip,
                 "--judge-backend", "cross-encoder", "--judge-model", tiny_cross_encoder, "--top-k", "4",
                 "--num-negatives", "2", "--direct_num_workers", "1"])
    err = capsys.readouterr().err
    assert code == 2
    assert "--judge-backend cross-encoder reads text pairs only" in err and "Traceback" not in err
    assert not os.path.exists(os.path.join(out, "stages", "judge", "stage.json"))
