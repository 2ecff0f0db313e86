"""What a run trusts is what it used, by content (issue "Provenance"), each case through the real command in its
own process: a model or an image replaced in place, same-size damage, settings that shape stages, chunking that
no later setting moves, committed-only readers, derived outputs, the score cache, ids, shape errors."""
from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from conftest import ROOT, SAMPLE, head, write_jsonl
from judgemine.pipelines.settings import FIELDS, shaping
from judgemine.pipelines.stages import BY_NAME, STAGES

JUDGEMINE = os.path.join(os.path.dirname(sys.executable), "judgemine")


def jm(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([JUDGEMINE, *args], capture_output=True, text=True, timeout=timeout)


def states(out: str, *args: str) -> tuple[int, dict[str, str], str]:
    """`status`'s exit code, {stage: state} and its whole output."""
    done = jm("status", "--output", out, *args)
    found = {line[:9].strip(): line[10:21].strip() for line in done.stdout.splitlines() if line[:9].strip() in BY_NAME}
    return done.returncode, found, done.stdout


def manifest(out: str) -> dict:
    with open(os.path.join(out, "manifest.json"), encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> list[str]:
    d = tmp_path_factory.mktemp("prov")
    return [write_jsonl(str(d / "geo.jsonl"), head(os.path.join(SAMPLE, "geography_qa.jsonl"), 24)),
            write_jsonl(str(d / "defs.jsonl"), head(os.path.join(SAMPLE, "definitions.jsonl"), 24))]


def _args(pairs: list[str], *extra: str) -> list[str]:
    """The defaults a user gets (no --chunk-size), small K and m."""
    return [a for p in pairs for a in ("--pairs", p)] + ["--top-k", "8", "--num-negatives", "3", "--step", "2", *extra]


@pytest.fixture(scope="module")
def similarity_run(tmp_path_factory, pairs) -> str:
    out = str(tmp_path_factory.mktemp("sim") / "out")
    done = jm("run", "--output", out, *_args(pairs, "--judge-backend", "similarity"))
    assert done.returncode == 0, done.stderr
    return out


def _copy(run: str, tmp_path) -> str:
    out = str(tmp_path / "out")
    shutil.copytree(run, out)
    return out


def test_a_judge_model_replaced_in_place_reruns_the_judge_and_misses_its_cache(tmp_path, pairs, tiny_judge):
    """Other weights of the same size in the same folder: not up to date, judged again (no cached score)."""
    import torch
    from safetensors.torch import load_file, save_file
    judge = str(tmp_path / "judge")
    shutil.copytree(tiny_judge, judge)
    out = str(tmp_path / "out")
    args = _args(pairs, "--judge-model", judge)
    assert jm("run", "--output", out, *args).returncode == 0
    before = manifest(out)["scores"]["positive"]["mean"]
    weights = os.path.join(judge, "model.safetensors")
    size = os.path.getsize(weights)
    torch.manual_seed(1)
    save_file({k: v + 0.5 * torch.randn_like(v) for k, v in load_file(weights).items()}, weights, {"format": "pt"})
    assert os.path.getsize(weights) == size
    code, found, _ = states(out, *args)
    assert code == 3 and found["judge"] == "stale" and found["retrieve"] == "up to date"
    assert jm("run", "--output", out, *args, "--force").returncode == 0  # --force: the cache, not the skip, decides
    judged = manifest(out)["stages"]["judge"]["counts"]
    assert judged["pairs_cached"] == 0 and judged["pairs_judged"] > 0
    assert manifest(out)["scores"]["positive"]["mean"] != before


def test_an_image_replaced_under_the_image_root_makes_ingest_stale(tmp_path, image_root, tiny_clip):
    root = str(tmp_path / "root")
    shutil.copytree(os.path.join(image_root, "images"), os.path.join(root, "images"))
    rows = [r for r in head(os.path.join(ROOT, "examples", "multimodal", "pairs_unime.jsonl"), 12) if r["pos_image"]]
    pairs = write_jsonl(str(tmp_path / "img.jsonl"), rows)
    out = str(tmp_path / "out")
    args = ["--pairs", pairs, "--image-root", root, "--embed-backend", "clip", "--embed-model", tiny_clip,
            "--judge-backend", "similarity", "--top-k", "3", "--num-negatives", "2"]
    assert jm("run", "--output", out, *args).returncode == 0
    assert states(out, *args)[0] == 0
    first, second = (os.path.join(root, rows[i]["pos_image"]) for i in (0, 1))
    shutil.copyfile(second, first)
    code, found, text = states(out, *args)
    assert code == 3 and found["ingest"] == "stale" and f"image {os.path.realpath(first)} was replaced" in text
    assert jm("run", "--output", out, *args).returncode == 0 and states(out, *args)[0] == 0


def _swap_bytes(path: str, at: int, width: int = 16) -> None:
    """Same-size damage: bytes copied over others, the size unchanged."""
    data = bytearray(open(path, "rb").read())
    data[at:at + width] = bytes(255 - b for b in data[at:at + width])
    with open(path, "r+b") as f:
        f.write(data)


def test_same_size_damage_is_named_and_rebuilt(tmp_path, similarity_run, pairs):
    out = _copy(similarity_run, tmp_path)
    args = _args(pairs, "--judge-backend", "similarity")
    assert states(out, *args)[0] == 0  # a copied run: other inodes, same content, read once
    part = os.path.join(out, "stages", "embed", "queries", "part-00000.parquet")
    _swap_bytes(part, 200)
    code, found, text = states(out, *args)
    assert code == 3 and found["embed"] == "damaged" and "stages/embed/queries/part-00000.parquet has other " \
        "content" in text and found["index"] == "stale"
    assert jm("export", "--output", out, "--to", str(tmp_path / "x.json")).returncode == 0  # shards are intact
    assert jm("run", "--output", out, *args).returncode == 0
    assert open(part, "rb").read() == open(os.path.join(similarity_run, "stages", "embed", "queries",
                                                          "part-00000.parquet"), "rb").read()
    retrieved = os.path.join(out, "stages", "retrieve", "part-00000.parquet")
    _swap_bytes(retrieved, 100)
    assert states(out, *args)[1]["retrieve"] == "damaged"
    assert jm("run", "--output", out, *args, "--beta", "0.05").returncode == 0


def test_a_stage_copied_from_another_run_is_not_trusted(tmp_path, similarity_run, pairs):
    """stages/embed from a run with a query prompt (same embedder, same width) dropped into this run."""
    out, other = _copy(similarity_run, tmp_path), str(tmp_path / "other")
    args = _args(pairs, "--judge-backend", "similarity")
    assert jm("run", "--output", other, *args, "--query-prompt", "query: ").returncode == 0
    shutil.rmtree(os.path.join(out, "stages", "embed"))
    shutil.copytree(os.path.join(other, "stages", "embed"), os.path.join(out, "stages", "embed"))
    code, found, _ = states(out, *args)
    assert code == 3 and found["embed"] == "stale" and found["mine"] == "stale"


def test_a_part_file_dropped_into_a_stage_folder_is_damage_and_other_files_are_named(tmp_path, similarity_run,
                                                                                      pairs):
    out = _copy(similarity_run, tmp_path)
    args = _args(pairs, "--judge-backend", "similarity")
    queries = os.path.join(out, "stages", "embed", "queries")
    shutil.copyfile(os.path.join(queries, "part-00000.parquet"), os.path.join(queries, "part-00099.parquet"))
    open(os.path.join(out, "shards", "notes.txt"), "w").write("mine")
    code, found, text = states(out, *args)
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


def _read_settings(module: str) -> set[str]:
    """Setting names a stage's module reads as `<something>.settings.X`, `settings.X` or `s.X`."""
    tree = ast.parse(open(os.path.join(ROOT, "pipelines", f"{module}.py"), encoding="utf-8").read())
    fields = {f.name for f in FIELDS}
    read = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in fields:
            base = node.value
            if (isinstance(base, ast.Name) and base.id in ("s", "settings")) or \
                    (isinstance(base, ast.Attribute) and base.attr == "settings"):
                read.add(node.attr)
    return read


@pytest.mark.parametrize("stage", [s.name for s in STAGES])
def test_a_stage_reads_only_settings_that_shape_it_or_what_it_reads_or_nothing(stage):
    """A setting a stage's code reads is in its fingerprint, or shapes a stage it reads (whose commit is in its
    fingerprint), or is declared to shape nothing (speed, place, retries): else a change would go unnoticed."""
    allowed = set(shaping(stage))
    pending = list(BY_NAME[stage].upstream)
    while pending:
        up = pending.pop()
        allowed |= set(shaping(up))
        pending += BY_NAME[up].upstream
    performance = {f.name for f in FIELDS if not f.metadata["shapes"]}
    assert _read_settings(stage) - allowed - performance == set()


def test_the_chunking_and_later_settings_never_rerun_earlier_stages(tmp_path, similarity_run, pairs, tiny_judge):
    """With the default chunk size, another K, another judge or another device leave ingest and embed alone."""
    out = _copy(similarity_run, tmp_path)
    base = _args(pairs, "--judge-backend", "similarity")
    record = json.load(open(os.path.join(out, "stages", "ingest", "stage.json")))
    assert record["chunk_size"] == 4096
    _, found, _ = states(out, *base, "--top-k", "20")
    assert [found[s] for s in ("ingest", "embed", "index", "retrieve")] == ["up to date"] * 3 + ["stale"]
    _, found, _ = states(out, *_args(pairs, "--judge-model", tiny_judge))
    assert [found[s] for s in ("retrieve", "judge")] == ["up to date", "stale"]
    assert states(out, *base, "--device", "cpu", "--judge-batch-size", "3")[0] == 0


def test_readers_use_the_committed_files_and_refuse_targets_inside_them(tmp_path, similarity_run, pairs):
    from judgemine.schemas.shard_dataset import ShardDataset
    out = _copy(similarity_run, tmp_path)
    rows = manifest(out)["accounting"]["rows_out"]
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


def test_a_rerun_leaves_no_report_or_export_looking_current(tmp_path, similarity_run, pairs):
    out = _copy(similarity_run, tmp_path)
    args = _args(pairs, "--judge-backend", "similarity")
    assert jm("export", "--output", out).returncode == 0
    assert jm("report", out).returncode == 0
    _, _, text = states(out, *args)
    assert "export    up to date" in text and "report    up to date" in text
    assert jm("run", "--output", out, *args, "--beta", "0.3", "--no-report").returncode == 0
    _, _, text = states(out, *args, "--beta", "0.3")
    assert "export    stale" in text and not [line for line in text.splitlines() if line.startswith("report")]
    assert not os.path.exists(os.path.join(out, "report", "index.html"))


def test_a_damaged_cache_file_is_moved_aside_and_its_pairs_judged_again(tmp_path, pairs, tiny_judge):
    cache, out = str(tmp_path / "cache"), str(tmp_path / "out")
    args = _args(pairs, "--judge-model", tiny_judge, "--judge-cache", cache, "--chunk-size", "16")  # several files
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
    judged = manifest(str(tmp_path / "again"))["stages"]["judge"]["counts"]
    assert judged["pairs_judged"] > 0 and judged["pairs_cached"] > 0


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


def test_assigned_ids_cannot_collide_with_the_users(tmp_path):
    rows = head(os.path.join(SAMPLE, "definitions.jsonl"), 3)
    rows[0]["query_id"] = "f:2"
    rows[2]["query_id"] = "auto:f:9"
    pairs = write_jsonl(str(tmp_path / "f.jsonl"), rows)
    out = str(tmp_path / "out")
    assert jm("ingest", "--output", out, "--pairs", pairs).returncode == 0
    ids = pq.read_table(os.path.join(out, "stages", "ingest", "queries")).column("query_id").to_pylist()
    rejects = pq.read_table(os.path.join(out, "stages", "ingest", "rejects")).to_pylist()
    assert sorted(ids) == ["auto:f:2", "f:2"]
    assert [r["reason"].split(":")[0] for r in rejects] == ["reserved_query_id"]


def _bomb(path: str) -> str:
    """A YAML alias bomb under a known key: 9^9 strings once expanded."""
    lines, previous = ["pairs:", '  - &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]'], "a"
    for name in "bcdefghi":
        lines.append(f"  - &{name} [{', '.join(['*' + previous] * 9)}]")
        previous = name
    open(path, "w").write("\n".join(lines) + "\n")
    return path


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
    """The GPU machine has no Beam: the backends, the trainer's loader and bench/gpu_check load with Beam blocked,
    and a backend scores there."""
    script = f"""
import importlib.abc, sys
class NoBeam(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "apache_beam":
            raise ImportError("Beam is blocked: " + name)
sys.meta_path.insert(0, NoBeam())
import bench.gpu_check
from judgemine.transforms.judge.backends import JUDGES
from judgemine.transforms.embed.backends import EMBEDDERS
from judgemine.schemas.shard_dataset import ShardDataset
from judgemine.transforms.common.sides import Side
from judgemine.transforms.judge.backends.hf_transformers import TransformersJudge
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
    assert os.waitstatus_to_exitcode(status) == 0, proc.stderr.read()[-2000:]
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
        peaks[side] = _peak_mib(["run", "--output", str(root / "out"), "--pairs", pairs, "--image-root", str(root),
                                 "--embed-backend", "clip", "--embed-model", tiny_clip, "--judge-model", tiny_vlm,
                                 "--top-k", "4", "--num-negatives", "2", "--no-report"])
    assert peaks[7000] - peaks[700] < 600, peaks


def test_rejects_are_parts_and_no_step_gathers_rows_into_one_element(tmp_path):
    """Each input file's rejects are their own part (a file with millions of bad rows is many); and no stage's
    pipeline has a step that collects a PCollection into one element (Beam's ToList)."""
    import apache_beam as beam

    from judgemine.pipelines.settings import Settings
    from judgemine.pipelines.stage import StageContext
    bad = [write_jsonl(str(tmp_path / f"{name}.jsonl"), [{"query_text": "no positive"}, "{not json"])
           for name in ("one", "two")]
    out = str(tmp_path / "out")
    done = jm("run", "--output", out, "--pairs", bad[0], "--pairs", bad[1],
              "--pairs", write_jsonl(str(tmp_path / "good.jsonl"), head(os.path.join(SAMPLE, "definitions.jsonl"), 8)),
              "--judge-backend", "similarity", "--top-k", "3", "--num-negatives", "1")
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
        stage.build(p, StageContext(settings, str(tmp_path / "x"), {n: str(tmp_path / n) for n in stage.publishes}))
        p.visit(gathers)
        assert gathers.found == [], stage.name
    p, gathers = beam.Pipeline(), Gathers()  # the check sees one
    _ = p | beam.Create([1]) | "Gather" >> beam.combiners.ToList()
    p.visit(gathers)
    assert gathers.found
