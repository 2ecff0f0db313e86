"""Bounds a careless input cannot break, through the real command: ids that cannot collide,
shape errors as one-line user errors, backends without Beam, huge images, no step that gathers every row."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest
from conftest import JUDGEMINE, ROOT, SAMPLE, head, jm, write_jsonl

from judgemine.pipelines.stages import STAGES
from judgemine.transforms.ingest.readers import assigned_query_id


@pytest.mark.slow
def test_assigned_ids_cannot_collide_with_the_users(tmp_path):
    rows = head(os.path.join(SAMPLE, "definitions.jsonl"), 3)
    rows[0]["query_id"] = "f:2"
    rows[2]["query_id"] = "auto:f:9"
    pairs = write_jsonl(str(tmp_path / "f.jsonl"), rows)
    out = str(tmp_path / "out")
    assert jm("ingest", "--output", out, "--pairs", pairs).returncode == 0
    ids = pq.read_table(os.path.join(out, "stages", "ingest", "queries")).column("query_id").to_pylist()
    rejects = pq.read_table(os.path.join(out, "stages", "ingest", "rejects")).to_pylist()
    assert sorted(ids) == sorted(["f:2", assigned_query_id({"query_image": "", "pos_image": "", **rows[1]})])
    assert [r["reason"].split(":")[0] for r in rejects] == ["reserved_query_id"]


def _bomb(path: str) -> str:
    """A YAML alias bomb under a known key: 9^9 strings once expanded."""
    lines, previous = ["pairs:", '  - &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]'], "a"
    for name in "bcdefghi":
        lines.append(f"  - &{name} [{', '.join(['*' + previous] * 9)}]")
        previous = name
    open(path, "w").write("\n".join(lines) + "\n")
    return path


@pytest.mark.slow
@pytest.mark.parametrize("case", ["ints", "list", "bomb", "named_parquet"])
def test_shape_errors_are_one_line_user_errors(tmp_path, case):
    config = str(tmp_path / "c.yaml")
    if case == "ints":
        open(config, "w").write("pairs: [1]\n")
    elif case == "list":
        open(config, "w").write("- pairs\n")
    elif case == "bomb":
        _bomb(config)
    else:
        fake = write_jsonl(str(tmp_path / "rows.parquet"), head(os.path.join(SAMPLE, "definitions.jsonl"), 2))
        open(config, "w").write(f"pairs: [{fake}]\n")
    started = time.time()
    done = jm("run", "--config", config, "--output", str(tmp_path / "out"), timeout=120)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr[-500:]
    assert len(done.stderr) < 400 and time.time() - started < 30
    assert not os.path.exists(tmp_path / "out" / "stages")


def test_backends_and_the_gpu_check_import_without_beam(tmp_path, tiny_judge):
    """The GPU machine has no Beam: the backends, the trainer's loader and bench/gpu/check.py load with Beam blocked,
    and a backend scores there."""
    script = f"""
import importlib.abc, sys
class NoBeam(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "apache_beam":
            raise ImportError("Beam is blocked: " + name)
sys.meta_path.insert(0, NoBeam())
import bench.gpu.check
from judgemine.transforms.judge.backends import JUDGES
from judgemine.transforms.embed.backends import EMBEDDERS
from judgemine.schemas.shard_dataset import ShardDataset
from judgemine.transforms.common.sides import Side
from judgemine.transforms.judge.backends.transformers import TransformersJudge
from judgemine.transforms.judge.base import JudgeModel
scores = TransformersJudge(JudgeModel({tiny_judge!r}, "float32", "cpu", 2)).score([Side("a")], [Side("b")])
assert "apache_beam" not in sys.modules and len(JUDGES.names()) == 5 and len(scores) == 1
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def _peak_mib(args: list[str]) -> float:
    """Peak RSS of a `judgemine` process, from the kernel."""
    proc = subprocess.Popen([JUDGEMINE, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, proc.stderr.read()[-2000:] if proc.stderr else ""
    return usage.ru_maxrss / 1024


def test_huge_images_cost_what_the_models_use_not_their_size(tmp_path, tiny_clip, tiny_vlm):
    """Four 7000x7000 RGBA pictures against the same at 700x700, through the CLIP embedder and the Qwen2-VL judge:
    each decoded picture is fitted to what the model uses before it is converted or cached, so the run costs
    about one decode more, not four full-size copies (a whole run: 3.1 GB against 0.86 for six before)."""
    from PIL import Image
    peaks = {}
    for side in (7000, 700):
        root = tmp_path / str(side)
        (root / "images").mkdir(parents=True)
        gradient = Image.linear_gradient("L")
        rows = []
        for i in range(4):
            Image.merge("RGBA", [gradient.rotate(90 * ((i + k) % 4)).resize((side, side)) for k in range(4)]).save(
                root / "images" / f"{i}.png")
            rows.append({"query_text": f"<|image_1|>\nWhat is picture {i}?", "query_image": f"images/{i}.png",
                         "pos_text": f"A gradient turned {90 * i} degrees."})
        rows += [{"query_text": f"Question {i}?", "pos_text": f"Answer {i}."} for i in range(8)]
        pairs = write_jsonl(str(root / "pairs.jsonl"), rows)
        peaks[side] = _peak_mib(["run", "--output", str(root / "out"), "--pairs", pairs, "--image-root",
                                 str(root),
                                 "--embed-backend", "clip", "--embed-model", tiny_clip, "--judge-model", tiny_vlm,
                                 "--top-k", "4", "--num-negatives", "2", "--no-report"])
    assert peaks[7000] - peaks[700] < 600, peaks


@pytest.mark.slow
def test_rejects_are_parts_and_no_step_gathers_rows_into_one_element(tmp_path):
    """Each input file's rejects are their own part (a file with millions of bad rows is many); and no stage's
    pipeline has a step that collects a PCollection into one element (Beam's ToList)."""
    import apache_beam as beam

    from judgemine.pipelines.run.stage import StageContext
    from judgemine.pipelines.settings import Settings
    from judgemine.schemas.layout import StageFolder
    bad = [write_jsonl(str(tmp_path / f"{name}.jsonl"), [{"query_text": "no positive"}, "{not json"])
           for name in ("one", "two")]
    out = str(tmp_path / "out")
    done = jm("run", "--output", out, "--pairs", bad[0], "--pairs", bad[1],
              "--pairs", write_jsonl(str(tmp_path / "good.jsonl"), head(os.path.join(SAMPLE, "definitions.jsonl"), 8)),
              "--judge-backend", "similarity", "--top-k", "3", "--num-negatives", "1",
              "--max-reject-share", "1")  # two files of nothing but bad rows: mined past the stop after ingest
    assert done.returncode == 0, done.stderr
    for folder in (os.path.join(out, "stages", "ingest", "rejects"), os.path.join(out, "rejects", "ingest")):
        parts = sorted(os.listdir(folder))
        assert len(parts) == 2 and all(len(pq.read_table(os.path.join(folder, p))) == 2 for p in parts)
    class Gathers(beam.pipeline.PipelineVisitor):
        def __init__(self) -> None:
            self.found: list[str] = []

        def enter_composite_transform(self, node) -> None:
            self.visit_transform(node)

        def visit_transform(self, node) -> None:
            if isinstance(node.transform, beam.combiners.ToList) or \
                    type(getattr(node.transform, "fn", None)).__name__ == "ToListCombineFn":
                self.found.append(node.full_label)

    settings = Settings(output=out, pairs=tuple(bad), judge_backend="similarity")
    for stage in STAGES:
        p, gathers = beam.Pipeline(), Gathers()
        stage.build(p, StageContext(settings, StageFolder(str(tmp_path / "x")),
                                    {n: str(tmp_path / n) for n in stage.publishes}))
        p.visit(gathers)
        assert gathers.found == [], stage.name
    p, gathers = beam.Pipeline(), Gathers()  # the check sees one
    _ = p | beam.Create([1]) | "Gather" >> beam.combiners.ToList()
    p.visit(gathers)
    assert gathers.found
