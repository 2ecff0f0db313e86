"""`judgemine report`: OUTPUT/report/index.html, what a run mined, for a person to check before GPU-days of
training are spent on it (data.py reads the run, plots.py draws, page.py lays out)."""
from __future__ import annotations

from judgemine.pipelines.outputs.derived import note_derived, run_commit
from judgemine.pipelines.outputs.report.data import read_report_data
from judgemine.pipelines.outputs.report.page import SECTIONS, render
from judgemine.schemas import storage
from judgemine.schemas.layout import RunLayout


def write_report(output: str, to: str | None = None) -> str:
    """Writes the page whole or not at all (schemas/storage.py: write_text), into the run or at `to` (a run that
    cannot be written: a read-only copy); returns its path."""
    path = to or RunLayout(output).report_page
    commit = run_commit(output)
    storage.write_text(path, render(read_report_data(output)))
    note_derived(output, path, "report", commit)
    return path


__all__ = ["SECTIONS", "write_report"]
