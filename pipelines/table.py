"""The stage table: every stage in run order, by the name of its folder (pipelines/<name>/). Adding a stage =
its folder here (stage.py ending in a `STAGE` declaration, pipelines/run/stage.py; settings.py with its settings
as `SETTINGS`), its transforms (transforms/<name>/) and one row below. pipelines/stages.py loads the stages,
pipelines/settings.py composes their settings; this module imports nothing, so both can read it."""
from __future__ import annotations

STAGE_NAMES: tuple[str, ...] = ("ingest", "embed", "index", "retrieve", "judge", "mine")
