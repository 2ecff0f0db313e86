"""The stages of the table (pipelines/table.py), loaded from their folders in run order. `judgemine run`, the
per-stage commands, `status` and the manifest read them."""
from __future__ import annotations

import importlib

from judgemine.pipelines.run.stage import Stage
from judgemine.pipelines.table import STAGE_NAMES

STAGES: tuple[Stage, ...] = tuple(importlib.import_module(f"judgemine.pipelines.{name}.stage").STAGE
                                  for name in STAGE_NAMES)
BY_NAME: dict[str, Stage] = {s.name: s for s in STAGES}
