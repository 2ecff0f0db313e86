"""A judge backend from outside judgemine: this module plus one entry point line,
`toy = toy_judge:ToyJudge` in the group `judgemine.judges` (tests/test_plugins.py)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from judgemine.transforms.common.options import setting
from judgemine.transforms.common.sides import Side
from judgemine.transforms.judge.base import Capabilities, JudgeBackend, JudgeModel


@dataclass(frozen=True)
class ToyJudgeOptions:
    toy_judge_bias: float = setting(0.0, ("judge",), "added to every score (the toy judge's own option)")


def toy_score(query: str, candidate: str, bias: float) -> float:
    """Shared character trigrams over the candidate's, plus the bias: a score a test can recompute."""
    grams = {query[i:i + 3] for i in range(len(query) - 2)}
    theirs = {candidate[i:i + 3] for i in range(len(candidate) - 2)}
    return len(grams & theirs) / max(len(theirs), 1) + bias


class ToyJudge(JudgeBackend):
    name = "toy"
    capabilities = Capabilities(images=False)
    Options = ToyJudgeOptions

    def __init__(self, model: JudgeModel, options: ToyJudgeOptions) -> None:
        self.bias = options.toy_judge_bias

    def score(self, queries: Sequence[Side], candidates: Sequence[Side]) -> np.ndarray:
        return np.array([toy_score(q.text, c.text, self.bias) for q, c in zip(queries, candidates)], np.float32)
