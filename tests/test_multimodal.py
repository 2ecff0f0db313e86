"""Embedders and the VLM judge on real photos, and the multimodal sample mined end to end."""
from __future__ import annotations

import json
import os

import numpy as np
import torch
from conftest import ROOT

from judgemine.pipelines.cli.parser import main
from judgemine.schemas import SHARDS, list_parts, read_table
from judgemine.transforms.common.content import content_id
from judgemine.transforms.common.images import image_fit, load
from judgemine.transforms.common.rejects import read_rejects
from judgemine.transforms.common.sides import Side
from judgemine.transforms.common.text import strip_image_tokens
from judgemine.transforms.embed.backends import load_embedder
from judgemine.transforms.embed.backends.clip import CLIPEmbedder
from judgemine.transforms.embed.backends.vlm2vec import VLM2VecEmbedder
from judgemine.transforms.embed.base import EmbedderSpec
from judgemine.transforms.judge.backends.transformers import TransformersVLMJudge
from judgemine.transforms.judge.base import JudgeModel

TEXTS = ["A close-up of a tabby cat.", "", "<|image_1|>\nWhat animal is this?", "A red motorcycle."]
IMAGES = ["", "images/chelsea.png", "images/chelsea.png", "images/motorcycle_left.png"]


def test_clip_embeds_text_image_and_both(tiny_clip, image_root):
    emb = CLIPEmbedder(EmbedderSpec("clip", tiny_clip, batch_size=2, device="cpu", image_root=image_root))
    vecs = emb.embed(TEXTS, IMAGES)
    assert vecs.shape == (4, 32) and np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)
    text_only = emb.embed([TEXTS[2]], [""])[0]
    image_only = emb.embed([""], [IMAGES[2]])[0]
    assert np.allclose(image_only, vecs[1], atol=1e-5)  # the same picture, the same vector
    fused = text_only + image_only
    assert np.allclose(vecs[2], fused / np.linalg.norm(fused), atol=1e-5)
    with torch.no_grad():  # the image tower by hand
        picture = load(IMAGES[1], image_root, fit=image_fit(tiny_clip))  # fitted to what the model uses
        pixels = emb.image_processor(images=[picture], return_tensors="pt")["pixel_values"]
        ref = emb._tensor(emb.model.get_image_features(pixel_values=pixels))[0].numpy()
    assert np.allclose(image_only, ref / np.linalg.norm(ref), atol=1e-5)


def test_the_embed_dtype_reaches_every_embedder(tiny_clip, image_root):
    from judgemine.pipelines.settings import Settings
    for backend, path, texts, images in [("clip", tiny_clip, TEXTS, IMAGES),
                                         ("sentence-transformers", Settings().resolved_embed_model, ["a cat", "Paris"],
                                          ["", ""])]:
        vecs = {}
        for dtype in ("float32", "bfloat16"):
            emb = load_embedder(EmbedderSpec(backend, path, 2, "cpu", dtype, image_root))
            assert next(emb.model.parameters()).dtype == getattr(torch, dtype)
            vecs[dtype] = emb.embed(texts, images)
        assert vecs["bfloat16"].dtype == np.float32
        assert 0 < np.abs(vecs["bfloat16"] - vecs["float32"]).max() < 0.05


def test_siglip_pads_to_its_fixed_length_and_pools_the_last_position(tmp_path, image_root):
    from judgemine.testing.tiny_models import build_tiny_siglip
    path = build_tiny_siglip(str(tmp_path / "siglip"), ["a cat", "a red motorcycle"])
    emb = CLIPEmbedder(EmbedderSpec("clip", path, batch_size=2, device="cpu", image_root=image_root))
    vecs = emb.embed(TEXTS, IMAGES)
    assert vecs.shape == (4, 64) and np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)
    ids = emb.tokenizer(["a cat"], padding=emb.padding, truncation=True, max_length=emb.max_len)["input_ids"][0]
    assert len(ids) == 16 and ids[-1] == emb.tokenizer.pad_token_id  # right-padded to the trained length
    alone = emb.embed([TEXTS[0]], [""])[0]
    assert np.allclose(alone, vecs[0], atol=1e-5)  # the batch's other texts change nothing


def test_vlm2vec_maps_the_image_marker_and_pools_the_last_token(tiny_vlm, image_root):
    spec = EmbedderSpec("vlm2vec", tiny_vlm, batch_size=3, device="cpu", image_root=image_root)
    emb = VLM2VecEmbedder(spec)
    ph = emb.vlm.placeholder
    assert emb.backbone_text("<|image_1|>\nWhat animal is this?", "x.png") == ph + "What animal is this?"
    assert emb.backbone_text("A cat.", "x.png") == ph + "A cat."
    assert emb.backbone_text("<|image_1|> A cat.", "") == "A cat."
    vecs = emb.embed(TEXTS, IMAGES)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)
    assert not np.allclose(vecs[2], emb.embed([strip_image_tokens(TEXTS[2])], [""])[0], atol=1e-3)
    one_by_one = np.stack([VLM2VecEmbedder(EmbedderSpec("vlm2vec", tiny_vlm, 1, "cpu", image_root=image_root))
                           .embed([t], [i])[0] for t, i in zip(TEXTS, IMAGES)])
    assert np.abs(one_by_one - vecs).max() < 1e-4  # left padding in a batch changes nothing


def test_vlm_judge_scores_image_pairs_from_the_yes_no_logits(tiny_vlm, image_root):
    judge = TransformersVLMJudge(JudgeModel(tiny_vlm, batch_size=4, device="cpu", image_root=image_root))
    queries = [Side("<|image_1|>\nWhat animal is this?", "images/chelsea.png"), Side("Find a photo of a cat."),
               Side("<|image_1|>\nCaption it.", "images/rocket.jpg"), Side("Show a motorbike.")]
    cands = [Side("A cat."), Side("", "images/chelsea.png"), Side("A rocket on its pad."),
             Side("", "images/motorcycle_right.png")]
    prompt = judge.prompter.text(queries[0], cands[1])
    ph = judge.vlm.placeholder
    assert prompt.index("Query:" + ph) < prompt.index("What animal") < prompt.index("Candidate:" + ph)
    scores = judge.score(queries, cands)
    assert judge.prompter.images.decodes == 3  # chelsea (twice in the pairs), rocket, motorcycle: each decoded once
    assert np.array_equal(judge.score(queries, cands), scores) and judge.prompter.images.decodes == 3
    for q, c, got in zip(queries, cands, scores):  # one pair alone, no padding, by hand
        images = [load(p, image_root, fit=image_fit(tiny_vlm)) for p in (q.image, c.image) if p]
        batch = judge.vlm.encode([judge.prompter.text(q, c)], [images])
        with torch.no_grad():
            logits = judge.vlm.model(**batch).logits[0, -1].double()
        y, n = logits[judge.prompter.yes_id].item(), logits[judge.prompter.no_id].item()
        assert abs(got - np.exp(y) / (np.exp(y) + np.exp(n))) < 1e-5
    assert len({round(float(s), 4) for s in scores}) > 1


def test_multimodal_sample_end_to_end(tmp_path, image_run, image_root):
    out = image_run
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    assert manifest["accounting"]["balanced"] and manifest["accounting"]["pairs_in"] == 56
    rejects = [r for part in read_rejects(os.path.join(out, "rejects", "ingest")) for r in part.to_pylist()]
    assert sorted(r["reason"].split(":")[0] for r in rejects) == [
        "empty_image_file", "image_outside_root", "image_too_large", "missing_image", "unreadable_image",
        "unreadable_image"]
    rows = [r for p in list_parts(os.path.join(out, "shards")) for r in read_table(p, SHARDS).to_pylist()]
    assert len(rows) == 50 and {r["dataset"] for r in rows} == {"image_caption", "visual_qa", "text_to_image"}
    for r in rows:
        for path in [r["query_image"], r["pos_image"], *r["neg_images"]]:
            assert path == "" or (path.startswith("images/") and not os.path.isabs(path))
        if r["query_image"]:  # the query's own picture is never its negative
            assert content_id("", r["query_image"], image_root) not in r["neg_ids"]
    assert any(r["neg_images"] and any(r["neg_images"]) for r in rows)
    dest = str(tmp_path / "unime.json")
    assert main(["export", "--format", "unime", "--output", out, "--to", dest]) == 0
    exported = json.load(open(dest))
    assert {rec["query_image"] for rec in exported} >= {"images/chelsea.png", "images/astronaut.png"}
    assert all(img == "" or img.startswith("images/") for rec in exported for _, img in rec["hard_negatives"])


def test_the_vlm2vec_config_runs_the_pipeline(tmp_path, tiny_vlm, image_root):
    """examples/vlm2vec.yaml (the paper's setting) with the model folders swapped for tiny ones."""
    out = str(tmp_path / "vlm2vec")
    args = ["--config", os.path.join(ROOT, "examples", "vlm2vec.yaml"), "--output", out,
            "--pairs", os.path.join(ROOT, "examples", "multimodal", "pairs_mmeb.jsonl"), "--image-root", image_root,
            "--embed-model", tiny_vlm, "--judge-model", tiny_vlm, "--embed-dtype", "float32",
            "--judge-dtype", "float32", "--device", "cpu", "--top-k", "12", "--num-negatives", "4",
            "--direct_num_workers", "1"]
    assert main(["run", *args]) == 0
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    assert manifest["settings"]["embed_backend"] == "vlm2vec" and manifest["accounting"]["balanced"]
    assert manifest["accounting"]["rows_out"] == 35 and manifest["stages"]["embed"]["counts"]["queries"] == 35
