"""The generated pages cannot drift: docs/reference/ is what pipelines/cli/reference.py writes from the code, and the
latest-results block of bench/RESULTS.md is what bench/results/*.json hold."""
from __future__ import annotations

import os
import shutil

from conftest import ROOT

from judgemine.pipelines.cli import reference


def test_the_committed_reference_pages_are_what_the_code_writes(capsys):
    assert reference.main([os.path.join(ROOT, "docs", "reference"), "--check"]) == 0, capsys.readouterr().err


def test_a_changed_declaration_shows_in_the_check(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "reference"
    shutil.copytree(os.path.join(ROOT, "docs", "reference"), folder)
    monkeypatch.setattr(reference, "HEADER", reference.HEADER + "changed\n")
    assert reference.main([str(folder), "--check"]) == 1
    assert "settings.md" in capsys.readouterr().err
    assert reference.main([str(folder)]) == 0 and reference.main([str(folder), "--check"]) == 0


def test_the_latest_results_block_is_what_the_result_files_hold(monkeypatch):
    monkeypatch.syspath_prepend(ROOT)
    from bench import results
    assert results.main(["--check"]) == 0
