"""What a run trusts is what it used, by content (its fingerprints), each case through the real command in its
own process: a model or an image replaced in place, same-size damage, a copied stage, the settings that shape
each stage, chunking that no later setting moves."""
from __future__ import annotations

import dataclasses
import json
import os
import pickle
import shutil

import pytest
from conftest import ROOT, copy_run, default_args, head, jm, manifest_of, status_of, write_jsonl

from judgemine.pipelines.run.fingerprints import shaping
from judgemine.pipelines.settings import FIELDS, GIVEN, Settings, given
from judgemine.pipelines.stages import BY_NAME, STAGES


def test_a_judge_model_replaced_in_place_reruns_the_judge_and_misses_its_cache(tmp_path, prov_pairs, tiny_judge):
    """Other weights of the same size in the same folder: not up to date, judged again (no cached score)."""
    import torch
    from safetensors.torch import load_file, save_file
    judge = str(tmp_path / "judge")
    shutil.copytree(tiny_judge, judge)
    out = str(tmp_path / "out")
    args = default_args(prov_pairs, "--judge-model", judge)
    assert jm("run", "--output", out, *args).returncode == 0
    before = manifest_of(out)["scores"]["positive"]["mean"]
    weights = os.path.join(judge, "model.safetensors")
    size = os.path.getsize(weights)
    torch.manual_seed(1)
    save_file({k: v + 0.5 * torch.randn_like(v) for k, v in load_file(weights).items()}, weights, {"format": "pt"})
    assert os.path.getsize(weights) == size
    code, found, _ = status_of(out, *args)
    assert code == 3 and found["judge"] == "stale" and found["retrieve"] == "up to date"
    assert jm("run", "--output", out, *args, "--force").returncode == 0  # --force: the cache, not the skip, decides
    judged = manifest_of(out)["stages"]["judge"]["counts"]
    assert judged["pairs_cached"] == 0 and judged["pairs_judged"] > 0
    assert manifest_of(out)["scores"]["positive"]["mean"] != before


def test_an_image_replaced_under_the_image_root_makes_ingest_stale(tmp_path, image_root, tiny_clip):
    root = str(tmp_path / "root")
    shutil.copytree(os.path.join(image_root, "images"), os.path.join(root, "images"))
    rows = [r for r in head(os.path.join(ROOT, "examples", "multimodal", "pairs_unime.jsonl"), 12) if r["pos_image"]]
    pairs = write_jsonl(str(tmp_path / "img.jsonl"), rows)
    out = str(tmp_path / "out")
    args = ["--pairs", pairs, "--image-root", root, "--embed-backend", "clip", "--embed-model", tiny_clip,
            "--judge-backend", "similarity", "--top-k", "3", "--num-negatives", "2"]
    assert jm("run", "--output", out, *args).returncode == 0
    assert status_of(out, *args)[0] == 0
    first, second = (os.path.join(root, rows[i]["pos_image"]) for i in (0, 1))
    shutil.copyfile(second, first)
    code, found, text = status_of(out, *args)
    assert code == 3 and found["ingest"] == "stale" and f"image {os.path.realpath(first)} was replaced" in text
    assert jm("run", "--output", out, *args).returncode == 0 and status_of(out, *args)[0] == 0


def _swap_bytes(path: str, at: int, width: int = 16) -> None:
    """Same-size damage: bytes copied over others, the size unchanged."""
    data = bytearray(open(path, "rb").read())
    data[at:at + width] = bytes(255 - b for b in data[at:at + width])
    with open(path, "r+b") as f:
        f.write(data)


def test_same_size_damage_is_named_and_rebuilt(tmp_path, similarity_run, prov_pairs):
    out = copy_run(similarity_run, tmp_path)
    args = default_args(prov_pairs, "--judge-backend", "similarity")
    assert status_of(out, *args)[0] == 0  # a copied run: other inodes, same content, read once
    part = os.path.join(out, "stages", "embed", "queries", "part-00000.parquet")
    _swap_bytes(part, 200)
    code, found, text = status_of(out, *args)
    assert code == 3 and found["embed"] == "damaged" and "stages/embed/queries/part-00000.parquet has other " \
        "content" in text and found["index"] == "stale"
    assert jm("export", "--output", out, "--to", str(tmp_path / "x.json")).returncode == 0  # shards are intact
    assert jm("run", "--output", out, *args).returncode == 0
    assert open(part, "rb").read() == open(os.path.join(similarity_run, "stages", "embed", "queries",
                                                          "part-00000.parquet"), "rb").read()
    retrieved = os.path.join(out, "stages", "retrieve", "part-00000.parquet")
    _swap_bytes(retrieved, 100)
    assert status_of(out, *args)[1]["retrieve"] == "damaged"
    assert jm("run", "--output", out, *args, "--beta", "0.05").returncode == 0


def test_a_stage_copied_from_another_run_is_not_trusted(tmp_path, similarity_run, prov_pairs):
    """stages/embed from a run with a query prompt (same embedder, same width) dropped into this run."""
    out, other = copy_run(similarity_run, tmp_path), str(tmp_path / "other")
    args = default_args(prov_pairs, "--judge-backend", "similarity")
    assert jm("run", "--output", other, *args, "--query-prompt", "query: ").returncode == 0
    shutil.rmtree(os.path.join(out, "stages", "embed"))
    shutil.copytree(os.path.join(other, "stages", "embed"), os.path.join(out, "stages", "embed"))
    code, found, _ = status_of(out, *args)
    assert code == 3 and found["embed"] == "stale" and found["mine"] == "stale"


def test_a_part_file_dropped_into_a_stage_folder_is_damage_and_other_files_are_named(tmp_path, similarity_run,
                                                                                      prov_pairs):
    out = copy_run(similarity_run, tmp_path)
    args = default_args(prov_pairs, "--judge-backend", "similarity")
    queries = os.path.join(out, "stages", "embed", "queries")
    shutil.copyfile(os.path.join(queries, "part-00000.parquet"), os.path.join(queries, "part-00099.parquet"))
    open(os.path.join(out, "shards", "notes.txt"), "w").write("mine")
    code, found, text = status_of(out, *args)
    assert found["embed"] == "damaged" and "part-00099.parquet is not a file this stage wrote" in text
    assert "foreign   shards/notes.txt" in text


def test_every_setting_declares_the_stages_it_shapes():
    """Each setting names the stages whose output it changes, or none; the fingerprints are built from that."""
    names = {s.name for s in STAGES}
    for f in FIELDS:
        assert set(f.metadata["shapes"]) <= names, f.name
    assert "embed_dtype" in shaping("embed") and "judge_max_model_len" in shaping("judge")
    assert "chunk_size" in shaping("ingest") and "top_k" not in shaping("ingest")
    assert {"judge_batch_size", "device", "embed_batch_size", "judge_concurrency"}.isdisjoint(
        n for s in names for n in shaping(s))


@pytest.mark.parametrize("stage", [s.name for s in STAGES])
def test_whatever_a_stage_is_given_shapes_it_or_what_it_reads_or_nothing(stage):
    """A stage is given only what its folder declares (pipelines/<stage>/settings.py: GIVEN, with its backends'
    options): each of those settings is in its fingerprint, or shapes a stage it reads (whose commit is in its
    fingerprint), or shapes nothing (speed, place, retries). A change to anything else cannot reach its code."""
    allowed = set(shaping(stage))
    pending = list(BY_NAME[stage].upstream)
    while pending:
        up = pending.pop()
        allowed |= set(shaping(up))
        pending += BY_NAME[up].upstream
    performance = {f.name for f in FIELDS if not f.metadata["shapes"]}
    seen = {f.name for f in dataclasses.fields(GIVEN[stage])}
    assert seen - allowed - performance == set()
    assert set(shaping(stage)) <= seen  # and it can see whatever its fingerprint holds


def test_a_stage_is_given_its_own_settings_and_cannot_read_another_stages():
    """The judge stage sees its settings, the images', the run's and its backends' options; K, a retrieve
    setting, is not there to read (the judge's plan gets it from the retrieve stage's estimate)."""
    settings = Settings(output="out", judge_backend="openai", judge_server_url="http://127.0.0.1:9", top_k=7,
                        image_root="imgs", judge_batch_size=3)
    judge = given("judge", settings)
    assert (judge.output, judge.image_root, judge.judge_batch_size) == ("out", "imgs", 3)
    assert judge.judge_server_url == "http://127.0.0.1:9" and judge.prompt == settings.prompt
    with pytest.raises(AttributeError, match="top_k"):
        _ = judge.top_k
    with pytest.raises(AttributeError, match="judge_backend"):
        _ = given("index", settings).judge_backend
    assert pickle.loads(pickle.dumps(judge)) == judge  # a worker gets it by name


def test_the_chunking_and_later_settings_never_rerun_earlier_stages(tmp_path, similarity_run, prov_pairs, tiny_judge):
    """With the default chunk size, another K, another judge or another device leave ingest and embed alone."""
    out = copy_run(similarity_run, tmp_path)
    base = default_args(prov_pairs, "--judge-backend", "similarity")
    record = json.load(open(os.path.join(out, "stages", "ingest", "stage.json")))
    assert record["chunk_size"] == 4096
    _, found, _ = status_of(out, *base, "--top-k", "20")
    assert [found[s] for s in ("ingest", "embed", "index", "retrieve")] == ["up to date"] * 3 + ["stale"]
    _, found, _ = status_of(out, *default_args(prov_pairs, "--judge-model", tiny_judge))
    assert [found[s] for s in ("retrieve", "judge")] == ["up to date", "stale"]
    assert status_of(out, *base, "--device", "cpu", "--judge-batch-size", "3")[0] == 0
