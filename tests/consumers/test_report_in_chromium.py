"""The report as a person sees it: loaded from disk in headless Chromium, every image decoded by the browser,
the screenshot not blank (make test-consumers installs Debian's chromium)."""
from __future__ import annotations

import io
import os
import shutil

import numpy as np
import pytest
from chromium import Browser
from PIL import Image

from judgemine.pipelines.outputs.report import SECTIONS


@pytest.mark.skipif(shutil.which("chromium") is None, reason="make test-consumers installs Debian's chromium")
@pytest.mark.parametrize("run", ["e2e_run", "image_run"])
def test_the_report_renders_in_chromium(run, request, tmp_path):
    out = request.getfixturevalue(run)
    browser = Browser()
    try:
        page = browser.open(os.path.join(out, "report", "index.html"))
        shot = browser.screenshot()
    finally:
        browser.close()
    assert page["sections"] == list(SECTIONS)
    assert page["images"] >= 4 and page["decoded"] == page["images"]
    image = np.asarray(Image.open(io.BytesIO(shot)).convert("L"), dtype=np.float64)
    (tmp_path / f"{run}.png").write_bytes(shot)
    assert image.shape[0] >= page["height"] * 0.9 and image.std() > 10
    assert len(np.unique(image)) > 50  # text, tables and plots, not one flat colour
