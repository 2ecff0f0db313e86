"""The mine stage's settings are the mining rule: declared once, with the rule that applies them, in
transforms/mine/rule.py (a change to the rule is a change to that one module)."""
from __future__ import annotations

from judgemine.transforms.mine.rule import MiningRule

SETTINGS = MiningRule
