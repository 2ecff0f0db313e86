"""Builds the folder that `bench.gpu.check` reads on a GPU machine, small enough to travel (< 64 MiB): the
tiny models of `make models` built fresh, two real photos, and the real MiniLM with its weights stored in fp16
(45 MB instead of 90; the check loads them back as fp32, so GPU and CPU run the same rounded weights).

Usage: python -m bench.gpu.pack DIR   (then, there: python3 -m bench.gpu.check DIR DIR/root DIR/minilm)
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile

from judgemine.pipelines.settings import Settings
from judgemine.testing.sample_pairs import copy_demo_images
from judgemine.testing.tiny_models import BUILDERS

PHOTOS = ("chelsea.png", "motorcycle_left.png")


def pack(out: str) -> None:
    from safetensors.torch import load_file, save_file
    texts = ["A close-up of a tabby cat.", "What animal is this?", "A red motorcycle.", "Define the word: big"]
    for kind in ("judge", "clip", "qwen2-vl", "idefics3"):
        BUILDERS[kind](os.path.join(out, f"tiny-{kind}"), texts)
    images = os.path.join(out, "root", "images")
    os.makedirs(images, exist_ok=True)
    with tempfile.TemporaryDirectory() as every:
        copy_demo_images(every)
        for name in PHOTOS:
            shutil.copy(os.path.join(every, "images", name), images)
    minilm = os.path.join(out, "minilm")
    shutil.copytree(Settings().resolved_embed_model, minilm, dirs_exist_ok=True)
    weights = os.path.join(minilm, "model.safetensors")
    save_file({k: v.half() for k, v in load_file(weights).items()}, weights, metadata={"format": "pt"})


if __name__ == "__main__":
    pack(sys.argv[1])
