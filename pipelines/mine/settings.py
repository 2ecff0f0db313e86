"""The mine stage's settings are the mining rule: declared once, with the rule that applies them, in
transforms/mine/rule.py (a change to the rule is a change to that one module)."""
from __future__ import annotations

from dataclasses import dataclass

from judgemine.pipelines.run.settings import ImageSettings, RunSettings
from judgemine.transforms.mine.rule import MiningRule

SETTINGS = MiningRule


@dataclass(frozen=True)
class MineStageSettings(MiningRule, ImageSettings, RunSettings):
    """What the mine stage is given: the mining rule, the images' root (a shard names each image as the run
    found it) and the run's settings."""


GIVEN = MineStageSettings
