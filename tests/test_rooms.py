"""Each kind of change touches its room, counted on a copy of the package: a new stage its two folders and one row
of the stage table, a judge backend or an export its module and one registration, a change to the mining rule
the rule's module alone. Each changed copy then runs through the real `judgemine` command."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess

import pyarrow.parquet as pq
import pytest
from conftest import JUDGEMINE, ROOT, SAMPLE, head, run_args, write_jsonl

PACKAGE = ("__init__.py", "pipelines", "schemas", "testing", "transforms")
PLUGINS = os.path.join(ROOT, "tests", "plugins")


@pytest.fixture
def copy(tmp_path) -> str:
    """The package's source, copied to tmp_path/judgemine (the folder the command imports it from)."""
    pkg = tmp_path / "judgemine"
    pkg.mkdir()
    for name in PACKAGE:
        src = os.path.join(ROOT, name)
        if os.path.isdir(src):
            shutil.copytree(src, pkg / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, pkg / name)
    return str(pkg)


def _files(root: str) -> dict[str, str]:
    out = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            out[os.path.relpath(path, root)] = hashlib.sha256(open(path, "rb").read()).hexdigest()
    return out


def _touched(before: dict[str, str], root: str) -> set[str]:
    after = _files(root)
    return {p for p in set(before) | set(after) if before.get(p) != after.get(p)}


def _write(root: str, rel: str, text: str) -> None:
    os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
    with open(os.path.join(root, rel), "w", encoding="utf-8") as f:
        f.write(text)


def _edit(root: str, rel: str, old: str, new: str) -> None:
    path = os.path.join(root, rel)
    text = open(path, encoding="utf-8").read()
    assert old in text, (rel, old)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text.replace(old, new, 1))


def _jm(copy: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.path.dirname(copy)}
    return subprocess.run([JUDGEMINE, *args], capture_output=True, text=True, env=env, timeout=600)


STAGE_SETTINGS = '''"""The datasets stage's settings."""
from __future__ import annotations

from dataclasses import dataclass

from judgemine.pipelines.run.settings import RunSettings
from judgemine.transforms.common.options import above, setting


@dataclass(frozen=True)
class DatasetsSettings:
    datasets_top: int = setting(2, ("datasets",), "dataset names kept per chunk", group="datasets", range=above(0))


@dataclass(frozen=True)
class DatasetsStageSettings(DatasetsSettings, RunSettings):
    pass


SETTINGS, GIVEN = DatasetsSettings, DatasetsStageSettings
'''
STAGE = '''"""The datasets stage: the dataset names of each query chunk."""
from __future__ import annotations

from typing import Any

import apache_beam as beam

from judgemine.pipelines.run.stage import Counters, Stage, StageContext, spread_chunks
from judgemine.schemas import list_parts
from judgemine.transforms.common.chunks import chunks_of
from judgemine.transforms.datasets.names import WriteDatasetNames


def build(p: beam.Pipeline, ctx: StageContext) -> None:
    chunks = chunks_of("queries", list_parts(ctx.input("ingest").folder("queries")))
    _ = (spread_chunks(p, chunks, ctx.work)
         | "Names" >> beam.ParDo(WriteDatasetNames(ctx.folder, ctx.settings.datasets_top)))


def count(ctx: StageContext, counters: Counters) -> dict[str, Any]:
    return {"rows": counters.get("rows", 0)}


STAGE = Stage("datasets", upstream=("ingest",), build=build, count=count)
'''
TRANSFORM = '''"""The datasets stage's DoFn."""
from __future__ import annotations

import json

import apache_beam as beam
from apache_beam.metrics import Metrics

from judgemine.schemas import QUERIES, read_table, storage


class WriteDatasetNames(beam.DoFn):
    def __init__(self, folder, top: int) -> None:
        self._folder, self._top, self._rows = folder, top, Metrics.counter("judgemine.datasets", "rows")

    def process(self, chunk) -> None:
        names = read_table(chunk.path, QUERIES, ["dataset"]).column("dataset").to_pylist()
        self._rows.inc(len(names))
        storage.write_text(self._folder.own_part(chunk.index) + ".json", json.dumps(sorted(set(names))[:self._top]))
'''


@pytest.mark.slow
def test_a_new_stage_touches_its_two_folders_and_one_row_of_the_table(copy, tmp_path):
    before = _files(copy)
    _write(copy, "pipelines/datasets/__init__.py", '"""The datasets stage."""\n')
    _write(copy, "pipelines/datasets/settings.py", STAGE_SETTINGS)
    _write(copy, "pipelines/datasets/stage.py", STAGE)
    _write(copy, "transforms/datasets/__init__.py", '"""The datasets stage\'s transforms."""\n')
    _write(copy, "transforms/datasets/names.py", TRANSFORM)
    _edit(copy, "pipelines/table.py", '("ingest", ', '("ingest", "datasets", ')
    assert {p.split("/")[0] + "/" + p.split("/")[1] for p in _touched(before, copy)} == {
        "pipelines/datasets", "transforms/datasets", "pipelines/table.py"}
    out = str(tmp_path / "out")
    pairs = write_jsonl(str(tmp_path / "p.jsonl"), head(os.path.join(SAMPLE, "definitions.jsonl"), 12))
    assert "--datasets-top" in _jm(copy, "datasets", "--help").stdout
    done = _jm(copy, "ingest", "--output", out, "--pairs", pairs, "--chunk-size", "5")
    assert done.returncode == 0, done.stderr
    done = _jm(copy, "datasets", "--output", out, "--pairs", pairs, "--chunk-size", "5", "--datasets-top", "1")
    assert done.returncode == 0, done.stderr
    record = json.load(open(os.path.join(out, "stages", "datasets", "stage.json")))
    assert record["counts"] == {"rows": 12} and len(record["files"]) == 3
    status = _jm(copy, "status", "--output", out, "--pairs", pairs, "--chunk-size", "5", "--datasets-top", "1")
    assert "datasets  up to date" in status.stdout, status.stdout


@pytest.mark.slow
def test_a_judge_backend_or_an_export_touches_its_module_and_one_registration(copy):
    before = _files(copy)
    shutil.copy(os.path.join(PLUGINS, "toy_judge.py"), os.path.join(copy, "transforms/judge/backends/toy.py"))
    _edit(copy, "transforms/judge/backends/__init__.py", "\nJUDGES", "\nfrom judgemine.transforms.judge.backends.toy"
          " import ToyJudge\n\nJUDGES")
    _edit(copy, "transforms/judge/backends/__init__.py", "SimilarityJudge))", "SimilarityJudge, ToyJudge))")
    shutil.copy(os.path.join(PLUGINS, "toy_export.py"), os.path.join(copy, "pipelines/outputs/exports/toy_tsv.py"))
    _edit(copy, "pipelines/outputs/exports/__init__.py", "\nEXPORTS", "\nfrom judgemine.pipelines.outputs.exports."
          "toy_tsv import SeparatedExport\n\nEXPORTS")
    _edit(copy, "pipelines/outputs/exports/__init__.py", "BatchesExport))", "BatchesExport, SeparatedExport))")
    assert _touched(before, copy) == {"transforms/judge/backends/toy.py", "transforms/judge/backends/__init__.py",
                                      "pipelines/outputs/exports/toy_tsv.py", "pipelines/outputs/exports/__init__.py"}
    run = _jm(copy, "run", "--help").stdout
    assert "similarity,toy}" in run and "--toy-judge-bias" in run
    export = _jm(copy, "export", "--help").stdout
    assert "toy-tsv" in export and "--toy-tsv-separator" in export


def test_a_change_to_the_mining_rule_touches_the_rule_module_alone(copy, e2e_run, small_pairs, tiny_judge,
                                                                 tmp_path):
    """A new filter (the first N ranks kept): its setting, its name and its test, in transforms/mine/rule.py;
    the flag, the mine stage's fingerprint, its counters and the manifest follow from there. Only mine reruns."""
    before = _files(copy)
    rule = "transforms/mine/rule.py"
    _edit(copy, rule, "    on_no_negatives: OnNoNegatives",
          '    max_rank: int = setting(0, ("mine",), "keep only the first N retrieved candidates; 0 = all", '
          'group="mine", range=at_least(0))\n    on_no_negatives: OnNoNegatives')
    _edit(copy, rule, '"min_score")', '"min_score", "max_rank")')
    _edit(copy, rule, '    return None if rule.min_score is None else scores < rule.min_score',
          '    if name == "max_rank":\n'
          '        return np.arange(len(scores)) >= rule.max_rank if rule.max_rank else None\n'
          '    return None if rule.min_score is None else scores < rule.min_score')
    assert _touched(before, copy) == {rule}
    out = str(tmp_path / "run")
    shutil.copytree(e2e_run, out)
    done = _jm(copy, "run", *run_args(out, small_pairs, tiny_judge, "--max-rank", "3", "--no-report"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("(up to date)") == 5, done.stdout  # every stage but mine
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    assert manifest["mining"]["rule"]["max_rank"] == 3 and manifest["mining"]["skipped"]["max_rank"] > 0
    assert manifest["stages"]["mine"]["counts"]["skipped_max_rank"] == manifest["mining"]["skipped"]["max_rank"]
    for row in pq.read_table(os.path.join(out, "shards")).to_pylist():
        assert row["fallback"] or all(r < 3 for r in row["neg_ranks"])
