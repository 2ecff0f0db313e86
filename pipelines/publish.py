"""The run's own outputs, published once the last stage completes: every stage's rejects in one folder for
the people who fix inputs, and manifest.json for the people who trust (or audit) the run."""
from __future__ import annotations

import os
import shutil

from judgemine.pipelines.artifacts import atomic_dir, stage_dir, write_json
from judgemine.pipelines.manifest import build_manifest
from judgemine.pipelines.settings import Settings
from judgemine.pipelines.stages import STAGES


def publish_run(settings: Settings) -> None:
    """OUTPUT/rejects/<stage>.parquet for every stage that writes rejects, then OUTPUT/manifest.json."""
    with atomic_dir(os.path.join(settings.output, "rejects")) as tmp:
        for stage in STAGES:
            src = os.path.join(stage_dir(settings.output, stage.name), "rejects.parquet")
            if os.path.exists(src):
                shutil.copyfile(src, os.path.join(tmp, f"{stage.name}.parquet"))
    write_json(os.path.join(settings.output, "manifest.json"), build_manifest(settings))
