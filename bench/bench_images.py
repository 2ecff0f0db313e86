"""make bench-images: peak memory of a whole run whose images are huge, against the same run with small ones.

Six RGBA PNGs of 7000x7000 pixels (under the 50M-pixel limit, ~200 KB each as files) as query images of six
image+text pairs among 24 text pairs, mined with the tiny CLIP embedder and the tiny Qwen2-VL judge (`make
models`); the same with the pictures at 700x700. Each run is its own process (`judgemine run`), peak RSS from
the kernel (wait4), median of ROUNDS runs. `--before REV` runs the same at another commit (a git worktree put on
PYTHONPATH ahead of the installed checkout), alternating with this one, for a before/after in one session.

Usage: python -m bench.bench_images [ROUNDS] [--before REV]
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import sys

from bench.bench_peer import ROOT, _timed
from bench.harness import save
from bench.revisions import checkout, env_for

WORK = os.path.join(ROOT, "out", "bench-images")
SIDES = {"large": 7000, "small": 700}


def _data(side: int) -> tuple[str, str]:
    """(pairs file, image root) for pictures `side` pixels square."""
    from PIL import Image
    root = os.path.join(WORK, f"data-{side}")
    pairs = os.path.join(root, "pairs.jsonl")
    if os.path.exists(pairs):
        return pairs, root
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    gradient = Image.linear_gradient("L")
    rows = []
    for i in range(6):
        bands = [gradient.rotate(90 * ((i + k) % 4)).resize((side, side)) for k in range(4)]
        Image.merge("RGBA", bands).save(os.path.join(root, "images", f"{i}.png"))
        rows.append({"query_text": f"<|image_1|>\nWhat is shown in picture {i}?", "query_image": f"images/{i}.png",
                     "pos_text": f"A gradient, turned {90 * i} degrees."})
    rows += [{"query_text": f"Question number {i}?", "pos_text": f"Answer number {i}."} for i in range(24)]
    with open(pairs, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    return pairs, root


def _run(tag: str, side: int, code: str) -> tuple[float, float]:
    pairs, root = _data(side)
    out = os.path.join(WORK, f"run-{tag}-{side}")
    shutil.rmtree(out, ignore_errors=True)
    models = os.path.join(ROOT, "models")
    cmd = [sys.executable, "-c", "from judgemine.pipelines.cli.entry import main; main()", "run", "--output", out,
           "--pairs", pairs, "--image-root", root, "--embed-backend", "clip", "--embed-model",
           f"{models}/tiny-clip", "--judge-model", f"{models}/tiny-qwen2-vl", "--top-k", "5", "--num-negatives",
           "2", "--no-report"]
    wall, rss, _ = _timed(cmd, out + ".log", env_for(code))
    return wall, rss


def main(argv: list[str]) -> None:
    rounds = int(argv[0]) if argv and argv[0].isdigit() else 3
    before = argv[argv.index("--before") + 1] if "--before" in argv else ""
    os.makedirs(WORK, exist_ok=True)
    codes = {"now": ""} | ({f"before-{before}": checkout(before, WORK)} if before else {})
    seen: dict[str, list[tuple[float, float]]] = {}
    for _ in range(rounds):
        for tag, path in codes.items():
            for name, side in SIDES.items():
                seen.setdefault(f"{tag} {name}", []).append(_run(tag, side, path))
    result = {key: {"peak_rss_mib": round(statistics.median(r for _, r in runs)),
                    "wall_s": round(statistics.median(w for w, _ in runs), 1),
                    "rounds_rss_mib": [round(r) for _, r in runs]} for key, runs in seen.items()}
    save("bench_images", {"rounds": rounds, "results": result})


if __name__ == "__main__":
    main(sys.argv[1:])
