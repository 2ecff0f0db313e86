"""Judge pairs from the bundled sample: each query with its positive and with other subsets' targets."""
from __future__ import annotations

import glob
import json
import os

from judgemine.transforms.common.sides import Side

SAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "sample")
MULTIMODAL = os.path.join(os.path.dirname(SAMPLE), "multimodal")


def sample_pairs(n: int, per_query: int = 16) -> tuple[list[Side], list[Side]]:
    rows = []
    for path in sorted(glob.glob(os.path.join(SAMPLE, "*.jsonl"))):
        if "bad_rows" in path:
            continue
        with open(path, encoding="utf-8") as f:
            rows += [json.loads(line) for line in f]
    queries: list[Side] = []
    candidates: list[Side] = []
    i = 0
    while len(queries) < n:
        q = rows[i % len(rows)]
        for j in range(per_query):  # a query's pairs together, as the pipeline schedules them
            queries.append(Side(q["query_text"]))
            candidates.append(Side(rows[(i * 7 + j * 13) % len(rows)]["pos_text"]))
        i += 1
    return queries[:n], candidates[:n]


def copy_demo_images(root: str) -> str:
    """The image demo's real photos copied under `root`/images (they ship inside scikit-image/-learn)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("copy_images", os.path.join(MULTIMODAL, "copy_images.py"))
    assert spec is not None and spec.loader is not None, "examples/multimodal/copy_images.py is missing"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.copy_images(os.path.join(root, "images"))
    return root


def image_pairs(n: int, per_query: int = 16) -> tuple[str, list[Side], list[Side]]:
    """(image root, queries, candidates) from the multimodal sample: image(+question) queries against
    caption candidates, and text searches against image candidates; the real photos are copied to a temp dir."""
    import tempfile
    root = copy_demo_images(tempfile.mkdtemp(prefix="bench-images-"))
    with open(os.path.join(MULTIMODAL, "pairs_mmeb.jsonl"), encoding="utf-8") as f:
        mmeb = [json.loads(line) for line in f]
    with open(os.path.join(MULTIMODAL, "pairs_unime.jsonl"), encoding="utf-8") as f:
        unime = [json.loads(line) for line in f]
    queries: list[Side] = []
    candidates: list[Side] = []
    i = 0
    while len(queries) < n:
        a, b = mmeb[i % len(mmeb)], unime[i % len(unime)]
        for j in range(per_query // 2):
            queries.append(Side(a["qry"], a["qry_image_path"]))
            candidates.append(Side(mmeb[(i + j * 5) % len(mmeb)]["pos_text"]))
            queries.append(Side(b["query_text"]))
            candidates.append(Side("", unime[(i + j * 3) % len(unime)]["pos_image"]))
        i += 1
    return root, queries[:n], candidates[:n]
