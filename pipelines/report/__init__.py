"""`judgemine report`: OUTPUT/report/index.html, what a run mined, for a person to check before GPU-days of
training are spent on it (data.py reads the run, plots.py draws, page.py lays out)."""
from __future__ import annotations

import os

from judgemine.pipelines.report.data import read_report_data
from judgemine.pipelines.report.page import SECTIONS, render


def write_report(output: str) -> str:
    """Writes the page under a temporary name and renames it when whole; returns its path."""
    html = render(read_report_data(output))
    folder = os.path.join(output, "report")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "index.html")
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(html)
    os.replace(tmp, path)
    return path


__all__ = ["SECTIONS", "write_report"]
