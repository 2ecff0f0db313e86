"""One owner of the run's layout (schemas/layout.py): no other module of the package builds a path of an output
folder from its names, and what a real run writes is where the layout says."""
from __future__ import annotations

import ast
import glob
import json
import os

from conftest import ROOT

from judgemine.pipelines.stages import STAGES
from judgemine.schemas.layout import RunLayout

# The names of a run's folders and files; a module that joins one into a path is building the layout itself.
NAMES = {"stages", "stage.json", "shards", "rejects", "manifest.json", "report", "export", "derived", "cache",
         ".judgemine.lock", ".judgemine-run", "queries", "candidates", "images", "index.html"}
OWNER = os.path.join(ROOT, "schemas", "layout.py")


def _is_name(text: str) -> bool:
    return any(part in NAMES for part in text.strip("/").split("/")) if text.strip("/") else False


def _path_builds(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, text) of every string among NAMES joined into a path: an argument of a `join` call, a part of
    an f-string next to a slash, or an operand of `+` or `/`."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "join":
            found += [(node.lineno, a.value) for a in node.args
                      if isinstance(a, ast.Constant) and isinstance(a.value, str) and _is_name(a.value)]
        elif isinstance(node, ast.JoinedStr):
            for part in node.values:  # a name right after a slash: "{out}/shards/..."
                if isinstance(part, ast.Constant) and isinstance(part.value, str) and "/" in part.value:
                    if {piece.split(" ")[0] for piece in part.value.split("/")[1:]} & NAMES:
                        found.append((node.lineno, part.value))
        elif isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Div)):
            found += [(node.lineno, side.value) for side in (node.left, node.right)
                      if isinstance(side, ast.Constant) and isinstance(side.value, str)
                      and side.value.startswith("/") and _is_name(side.value)]
    return found


def test_no_module_but_the_layout_builds_a_path_of_the_run():
    """Greps every module of the package that reads or writes runs (pipelines/, transforms/, schemas/) for a
    run folder's names joined into a path; schemas/layout.py is the one place they are."""
    offenders = []
    for folder in ("pipelines", "transforms", "schemas"):
        for path in glob.glob(os.path.join(ROOT, folder, "**", "*.py"), recursive=True):
            if os.path.samefile(path, OWNER):
                continue
            tree = ast.parse(open(path, encoding="utf-8").read())
            offenders += [f"{os.path.relpath(path, ROOT)}:{line}: {text!r}" for line, text in _path_builds(tree)]
    assert not offenders, "paths of a run built outside schemas/layout.py:\n" + "\n".join(offenders)


def test_the_check_finds_a_path_built_by_hand():
    """The grep above is not vacuous: each way of building a path from the names is caught."""
    built = ast.parse('os.path.join(out, "stages", s)\nf"{out}/shards/{n}"\nroot + "/manifest.json"\n'
                      'storage.join(d, "rejects")\n')
    assert [line for line, _ in _path_builds(built)] == [1, 2, 3, 4]
    assert not _path_builds(ast.parse('os.path.join(tmp, stage.name)\nf"see {x} for the rejects"\n'))


def test_a_real_run_is_where_the_layout_says(e2e_run):
    """Every stage's record, the shards, the run's rejects and manifest, the report, the marker and the lock
    file of a finished run are at the layout's paths, and each recorded file under its stage's folder."""
    run = RunLayout(e2e_run)
    for stage in STAGES:
        record = json.load(open(run.stage(stage.name).record))
        mine = RunLayout("").stage(stage.name).path + "/"
        assert all(rel.startswith((mine, RunLayout("").shards + "/", RunLayout("").rejects + "/",
                                   os.path.basename(run.manifest))) for rel in record["files"])
    shards = json.load(open(run.stage("mine").record))["files"]
    assert any(os.path.dirname(run.path(rel)) == run.shards for rel in shards)
    assert os.path.isfile(run.manifest) and os.path.isfile(run.marker) and os.path.isfile(run.lock)
    assert os.path.isdir(run.rejects) and os.path.isfile(run.stage("ingest").part("queries", 0))
    assert os.path.isdir(run.stage("index").index_shard(0))
    assert os.path.isfile(run.stage("retrieve").query_part(0)) and os.path.isfile(run.stage("embed").query_part(0))
