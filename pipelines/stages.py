"""The stage table: every stage in run order. `judgemine run`, the per-stage commands, `status` and the
manifest read it; adding a stage = its module (a `STAGE` declaration, pipelines/stage.py) + one row here."""
from __future__ import annotations

from judgemine.pipelines import embed, index, ingest, judge, mine, retrieve
from judgemine.pipelines.stage import Stage

STAGES: tuple[Stage, ...] = (ingest.STAGE, embed.STAGE, index.STAGE, retrieve.STAGE, judge.STAGE, mine.STAGE)
BY_NAME: dict[str, Stage] = {s.name: s for s in STAGES}
