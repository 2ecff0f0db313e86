"""The run's own outputs, published once the last stage completes: every stage's rejects in one folder for
the people who fix inputs, and manifest.json for the people who trust (or audit) the run."""
from __future__ import annotations

import os
from typing import Any

from apache_beam.options.pipeline_options import PipelineOptions

from judgemine.pipelines.outputs.derived import drop_report
from judgemine.pipelines.outputs.manifest import build_manifest
from judgemine.pipelines.run.artifacts import write_json
from judgemine.pipelines.run.commit import fault_point, swap_in, temporary_dir
from judgemine.pipelines.settings import Settings
from judgemine.pipelines.stages import STAGES
from judgemine.schemas import list_parts, storage
from judgemine.schemas.layout import RunLayout


def publish_run(settings: Settings, last: dict[str, Any], options: PipelineOptions) -> list[str]:
    """OUTPUT/rejects/<stage>/part-* for every stage that rejected rows, then OUTPUT/manifest.json; `last` is
    the last stage's record, not yet committed: these files are part of its commit. Returns their paths."""
    out, name, layout = settings.output, last["stage"], RunLayout(settings.output)
    rejects = layout.rejects
    with temporary_dir(rejects) as tmp:
        for stage in STAGES:
            for src in list_parts(layout.stage(stage.name).folder("rejects")):
                storage.copy_file(src, os.path.join(tmp, stage.name, os.path.basename(src)))
        swap_in(tmp, rejects, f"{name}:rejects")
    drop_report(out)  # made from the shards just replaced: rewritten after the run, or absent, never stale
    manifest = layout.manifest
    write_json(manifest, build_manifest(settings, pending=last, options=options))
    fault_point(f"{name}:manifest")
    return [rejects, manifest]
