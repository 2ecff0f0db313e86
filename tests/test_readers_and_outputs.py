"""Readers take what a run committed and nothing else, and what is made from a run says which run, through the
real command: committed shard files only, exports kept out of the run's folders, no report or export left looking
current, a damaged score-cache file set aside, any subset name in the report."""
from __future__ import annotations

import os
import shutil
import time

import pytest
from conftest import SAMPLE, copy_run, default_args, head, jm, manifest_of, status_of, write_jsonl


def test_readers_use_the_committed_files_and_refuse_targets_inside_them(tmp_path, similarity_run, prov_pairs):
    from judgemine.schemas.shard_dataset import ShardDataset
    out = copy_run(similarity_run, tmp_path)
    rows = manifest_of(out)["accounting"]["rows_out"]
    shard = sorted(os.listdir(os.path.join(out, "shards")))[0]
    shutil.copyfile(os.path.join(out, "shards", shard), os.path.join(out, "shards", "train.parquet"))
    assert ShardDataset(os.path.join(out, "shards"), skip_fallback=False).rows == rows
    done = jm("export", "--output", out, "--to", os.path.join(out, "shards", "x.parquet"), "--format",
              "sentence-transformers")
    assert done.returncode == 2 and "inside the run's committed files" in done.stderr
    done = jm("export", "--output", out, "--to", str(tmp_path))
    assert done.returncode == 2 and done.stderr.strip() == f"judgemine: --to {tmp_path} is a folder: give a file name"
    os.remove(os.path.join(out, "stages", "mine", "stage.json"))  # what a kill between the shard swaps leaves
    with pytest.raises(FileNotFoundError, match="no committed mine stage"):
        ShardDataset(os.path.join(out, "shards"))
    assert jm("export", "--output", out).returncode == 2


def test_a_rerun_leaves_no_report_or_export_looking_current(tmp_path, similarity_run, prov_pairs):
    out = copy_run(similarity_run, tmp_path)
    args = default_args(prov_pairs, "--judge-backend", "similarity")
    assert jm("export", "--output", out).returncode == 0
    assert jm("report", out).returncode == 0
    _, _, text = status_of(out, *args)
    assert "export    up to date" in text and "report    up to date" in text
    assert jm("run", "--output", out, *args, "--beta", "0.3", "--no-report").returncode == 0
    _, _, text = status_of(out, *args, "--beta", "0.3")
    assert "export    stale" in text and not [line for line in text.splitlines() if line.startswith("report")]
    assert not os.path.exists(os.path.join(out, "report", "index.html"))


def test_a_damaged_cache_file_is_moved_aside_and_its_pairs_judged_again(tmp_path, prov_pairs, tiny_judge):
    cache, out = str(tmp_path / "cache"), str(tmp_path / "out")
    args = default_args(prov_pairs, "--judge-model", tiny_judge, "--judge-cache", cache,
                        "--chunk-size", "16")  # several cache files
    assert jm("run", "--output", out, *args).returncode == 0
    files = sorted(n for n in os.listdir(cache) if n.endswith(".parquet"))
    with open(os.path.join(cache, files[0]), "r+b") as f:
        f.truncate(100)
    leftover = os.path.join(cache, ".scores-dead.parquet.tmp")
    open(leftover, "wb").write(b"half")
    os.utime(leftover, (time.time() - 3600, time.time() - 3600))
    done = jm("run", "--output", str(tmp_path / "again"), *args)
    assert done.returncode == 0, done.stderr
    warned = [line for line in done.stderr.splitlines() if "is unreadable" in line]
    assert len(warned) == 1 and files[0] in warned[0]
    assert os.path.exists(os.path.join(cache, files[0] + ".damaged")) and not os.path.exists(leftover)
    judged = manifest_of(str(tmp_path / "again"))["stages"]["judge"]["counts"]
    assert judged["pairs_judged"] > 0 and judged["pairs_cached"] > 0


@pytest.mark.slow
def test_any_subset_name_renders_in_the_report(tmp_path):
    rows = head(os.path.join(SAMPLE, "definitions.jsonl"), 12)
    for i, r in enumerate(rows):
        r["dataset"] = ["price_$5_to_$10", "$\\undefinedmacro$", "<b>bold</b>"][i % 3]
    pairs = write_jsonl(str(tmp_path / "hostile.jsonl"), rows)
    out = str(tmp_path / "out")
    done = jm("run", "--output", out, "--pairs", pairs, "--judge-backend", "similarity", "--top-k", "4",
              "--num-negatives", "2")
    assert done.returncode == 0, done.stderr
    page = open(os.path.join(out, "report", "index.html"), encoding="utf-8").read()
    assert "price_$5_to_$10" in page and "&lt;b&gt;bold&lt;/b&gt;" in page and "<b>bold</b>" not in page
