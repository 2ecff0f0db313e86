"""`judgemine plan`: counts from the inputs, rates measured here, the cache known once retrieval is done."""
from __future__ import annotations

import json
import os

from conftest import run_args

from judgemine.pipelines.cli.parser import main


def test_plan_counts_the_inputs_and_measures_the_models(tmp_path, small_pairs, tiny_judge, capsys):
    out = str(tmp_path / "out")
    assert main(["plan", *run_args(out, small_pairs, tiny_judge), "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    lines = sum(1 for p in small_pairs for line in open(p, encoding="utf-8") if line.strip())
    assert plan["queries"] + plan["rejected_rows"] == lines and plan["rejected_rows"] > 0
    assert plan["judge_pairs"] == plan["queries"] * 13 and plan["judge_pairs_cached"] is None  # K = 12
    assert plan["rates"]["embed_texts_per_second"] > 0 and plan["rates"]["judge_pairs_per_second"] > 0
    assert plan["seconds"]["judge"] > 0 and plan["bytes"]["vectors"] > 0
    low, high = plan["seconds_range"]["judge"]  # three timed samples: the middle one's estimate within their range
    assert 0 < low <= plan["seconds"]["judge"] <= high
    assert plan["seconds_range"]["embed"] == [plan["seconds"]["embed"]] * 2  # one measurement: a point
    assert not os.path.exists(out)  # a plan writes nothing


def test_the_plan_table_gives_a_time_as_a_range_where_the_samples_differed():
    from judgemine.pipelines.cli.plan import _span
    assert _span(30, 30) == "30 s" and _span(200, 400) == "3-7 min" and _span(90, 400) == "90 s-7 min"


def test_after_retrieval_the_plan_counts_the_cached_pairs(e2e_run, small_pairs, tiny_judge, capsys):
    assert main(["plan", *run_args(e2e_run, small_pairs, tiny_judge), "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    judge = json.load(open(os.path.join(e2e_run, "stages", "judge", "stage.json")))["counts"]
    assert plan["judge_pairs"] == plan["judge_pairs_cached"] == judge["pairs"] and plan["seconds"]["judge"] == 0


def test_a_plan_with_a_missing_model_is_a_user_error(tmp_path, small_pairs, capsys):
    assert main(["plan", *run_args(str(tmp_path / "out"), small_pairs, str(tmp_path / "none"))]) == 2
    assert "judge model folder not found" in capsys.readouterr().err
