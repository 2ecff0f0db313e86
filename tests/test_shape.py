"""The codebase's shape holds: one installed import name, layers that import only downward, every backend
reachable from the settings, and a stage that is one declaration run by the shared runner."""
from __future__ import annotations

import ast
import dataclasses
import glob
import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from conftest import ROOT, SAMPLE, head, write_jsonl

from judgemine.pipelines.cli.parser import main, settings_from
from judgemine.pipelines.settings import FIELDS, Settings
from judgemine.pipelines.stages import BY_NAME
from judgemine.transforms.embed.backends import EMBEDDERS
from judgemine.transforms.judge.backends import JUDGES


def _imports(path: str) -> set[str]:
    tree = ast.parse(open(path, encoding="utf-8").read())
    return {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}


@pytest.mark.slow
def test_the_wheel_installs_one_top_level_name(tmp_path):
    """`pip install .` claims `judgemine` only: its folders are subpackages, not top-level names."""
    source = str(tmp_path / "src")  # a copy: building in the checkout would leave build/ and egg-info there
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".*", "out", "models", "build", "*.egg-info",
                                                                 "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), source], check=True, capture_output=True)
    (wheel,) = glob.glob(str(tmp_path / "judgemine-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        top_level = next(z.read(n).decode().split() for n in names if n.endswith(".dist-info/top_level.txt"))
    assert top_level == ["judgemine"]
    assert {n.split("/")[0] for n in names if ".dist-info/" not in n} == {"judgemine"}
    assert {"judgemine/pipelines/cli/parser.py", "judgemine/pipelines/judge/stage.py",
            "judgemine/transforms/judge/backends/vllm.py", "judgemine/schemas/tables.py",
            "judgemine/testing/tiny_models.py"} <= set(names)
    assert not any(n.startswith(("judgemine/tests/", "judgemine/bench/")) for n in names)
    venv = tmp_path / "venv"  # a bare environment: the distribution's own metadata names one package
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    out = subprocess.run([python, "-c", "import importlib.metadata as m, judgemine; print(m.distribution("
                          "'judgemine').read_text('top_level.txt').split(), judgemine.__version__)"],
                         check=True, capture_output=True, text=True, cwd=str(tmp_path)).stdout
    assert out.split()[0] == "['judgemine']"


@pytest.mark.slow
def test_transforms_never_import_pipelines_and_no_stage_imports_another():
    for path in glob.glob(os.path.join(ROOT, "transforms", "**", "*.py"), recursive=True):
        assert not {m for m in _imports(path) if m.startswith("judgemine.pipelines")}, path
    for name in BY_NAME:  # a stage's folder imports no other stage's
        others = tuple(f"judgemine.pipelines.{other}" for other in BY_NAME if other != name)
        for path in glob.glob(os.path.join(ROOT, "pipelines", name, "*.py")):
            found = {m for m in _imports(path) if m.startswith(others) or m == "judgemine.pipelines"}
            assert not found, (path, found)
    ours = ("__init__.py", "setup.py", "pipelines", "transforms", "schemas", "testing", "tests", "bench", "examples")
    for path in [p for top in ours for p in glob.glob(os.path.join(ROOT, top, "**", "*.py"), recursive=True)
                 + glob.glob(os.path.join(ROOT, top))
                 if p.endswith(".py")]:
        tops = {m.split(".")[0] for m in _imports(path)}
        assert not tops & {"pipelines", "transforms", "schemas", "testing"}, path  # always judgemine.*


def test_every_backend_is_a_setting_choice_and_its_options_are_settings():
    fields = {f.name: f for f in FIELDS}
    assert JUDGES.names() == ("transformers", "vllm", "openai", "cross-encoder", "similarity")
    assert EMBEDDERS.names() == ("sentence-transformers", "clip", "vlm2vec")
    for name in JUDGES.names():
        backend = JUDGES.get(name)
        for option in dataclasses.fields(backend.Options):  # declared once, in the backend: composed, not copied
            assert fields[option.name].metadata["backend"] == ("judge_backend", name)
            assert fields[option.name].metadata["group"] == f"judge: {name}"
            assert option.default == fields[option.name].default, (name, option.name)
        assert Settings(judge_backend=name).judge_backend == name
    for name in EMBEDDERS.names():
        assert Settings(embed_backend=name).embed_backend == name
    wanted = r"judge_backend='nope' \(choose from transformers, vllm, openai, cross-encoder, similarity\)"
    with pytest.raises(ValueError, match=wanted):
        Settings(judge_backend="nope")
    with pytest.raises(ValueError, match="unknown judge backend 'nope'"):
        JUDGES.get("nope")


@pytest.mark.parametrize("flag,value", [("--judge-backend", "nope"), ("--embed-backend", "bert"),
                                        ("--on-no-negatives", "skip"), ("--judge-dtype", "int8"),
                                        ("--pairs-layout", "csv"), ("--device", "tpu")])
def test_a_value_outside_the_choices_is_a_usage_error(flag, value, tmp_path, capsys):
    assert main(["status", "--output", str(tmp_path), flag, value]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "invalid choice" in err[0] and err[0].startswith("judgemine status: ")


def test_a_config_value_outside_the_choices_exits_2(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("judge_backend: nope\n")
    assert main(["status", "--config", str(config), "--output", str(tmp_path)]) == 2
    assert "judge_backend='nope'" in capsys.readouterr().err


def test_help_groups_settings_and_shows_the_registries_choices(capsys):
    assert main(["run", "--help"]) == 0
    text = capsys.readouterr().out
    for group in ("ingest settings", "embed settings", "judge settings", "judge: vllm settings", "mine settings"):
        assert group in text
    assert "{transformers,vllm,openai,cross-encoder,similarity}" in text
    assert "{sentence-transformers,clip,vlm2vec}" in text
    assert "--no-force" in text and "--no-skip-image-check" in text


def test_a_flag_turns_off_a_boolean_the_config_turned_on(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("force: true\nskip_image_check: true\n")
    on, _ = settings_from(["--config", str(config), "--output", str(tmp_path)])
    assert on.force and on.skip_image_check
    off, _ = settings_from(["--config", str(config), "--output", str(tmp_path), "--no-force",
                            "--no-skip-image-check"])
    assert not off.force and not off.skip_image_check


@pytest.mark.slow
def test_a_new_stage_is_one_declaration_run_by_the_shared_runner(tmp_path):
    """A stage written as a new module would be: it reads ingest's committed artifacts, counts with a Beam
    counter, and the runner gives it its fingerprint, directory, stage.json and atomic publication."""
    import apache_beam as beam
    from apache_beam.metrics import Metrics

    from judgemine.pipelines.run.runner import run_one, run_stage
    from judgemine.pipelines.run.stage import Stage, spread_chunks
    from judgemine.schemas import QUERIES, list_parts, read_table
    from judgemine.transforms.common.chunks import chunks_of

    class CountDatasets(beam.DoFn):
        def __init__(self, directory: str) -> None:
            self._dir, self._rows = directory, Metrics.counter("judgemine.datasets", "rows")

        def process(self, chunk):
            names = read_table(chunk.path, QUERIES, ["dataset"]).column("dataset").to_pylist()
            self._rows.inc(len(names))
            with open(os.path.join(self._dir, f"{chunk.index}.json"), "w") as f:
                json.dump(sorted(set(names)), f)

    def build(p, ctx):
        chunks = chunks_of("queries", list_parts(ctx.input("ingest").folder("queries")))
        _ = spread_chunks(p, chunks, ctx.work) | "Count" >> beam.ParDo(CountDatasets(ctx.folder.path))

    def count(ctx, counters):
        return {"rows": counters["rows"], "chunks": len(os.listdir(ctx.folder.path))}

    stage = Stage("datasets", upstream=("ingest",), build=build, count=count)
    pairs = write_jsonl(str(tmp_path / "defs.jsonl"), head(os.path.join(SAMPLE, "definitions.jsonl"), 30))
    settings = Settings(output=str(tmp_path / "out"), pairs=(pairs,), chunk_size=8)
    options = PipelineOptions(["--direct_num_workers", "1"])
    ingest = run_one("ingest", settings, options)
    record = run_stage(stage, settings, options)
    assert ingest["counts"]["queries"] == 30 and record["counts"] == {"rows": 30, "chunks": 4}
    written = json.load(open(os.path.join(settings.output, "stages", "datasets", "stage.json")))
    assert written["fingerprint"] == record["fingerprint"] and not glob.glob(settings.output + "/stages/*.tmp-*")


def test_the_default_chunk_depends_on_nothing_a_later_stage_or_the_host_decides():
    """--chunk-size 0 (the default) is one number, whatever top_k, the judge or the device: changing those must
    never re-chunk, and so rerun, ingest and everything after it."""
    from judgemine.pipelines.settings import DEFAULT_CHUNK_SIZE
    sizes = {Settings(**kw).chunk_size for kw in ({}, {"top_k": 20}, {"judge_backend": "similarity"},
                                                   {"device": "cuda"}, {"device": "cpu", "top_k": 12})}
    assert sizes == {DEFAULT_CHUNK_SIZE} and Settings(chunk_size=16).chunk_size == 16


def test_a_stage_folder_holds_the_settings_that_shape_that_stage():
    """pipelines/<stage>/settings.py (the mine stage's: the mining rule) declares settings that shape that stage or
    none, shown in that stage's section of --help; the run's own settings shape none. Which settings shape which
    stage is the folder they are declared in."""
    from judgemine.pipelines.settings import STAGE_SETTINGS, RunSettings
    from judgemine.pipelines.stages import STAGES
    assert len(STAGE_SETTINGS) == len(STAGES)
    for cls, stage in zip(STAGE_SETTINGS, STAGES):
        for f in dataclasses.fields(cls):
            assert f.metadata["group"] == stage.name, (stage.name, f.name)
            assert stage.name in f.metadata["shapes"] or not f.metadata["shapes"], (stage.name, f.name)
    assert all(not f.metadata["shapes"] for f in dataclasses.fields(RunSettings))
