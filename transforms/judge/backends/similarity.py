"""`--judge-backend similarity`: no judge model; the retrieval similarity is the score, the query's
similarity to its own positive plays s_pos. What sentence-transformers' miner does without a cross-encoder,
and the cheap mode for runs too large to judge: every mining rule works on it unchanged. The judge stage then
applies transforms/judge/by_similarity.py's JudgeBySimilarity to the retrieval instead of RunInference (kept out of this
module: backends import no Beam, so the GPU scripts can load them where Beam is absent)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from judgemine.transforms.common.options import NoOptions
from judgemine.transforms.judge.base import Capabilities, JudgeInputs, JudgeKind


class SimilarityJudge(JudgeKind):
    name: ClassVar[str] = "similarity"
    capabilities: ClassVar[Capabilities] = Capabilities(images=True, needs_model=False)
    Options: ClassVar[type] = NoOptions

    @classmethod
    def judging(cls) -> Callable[[JudgeInputs], Any]:
        from judgemine.transforms.judge.by_similarity import JudgeBySimilarity
        return JudgeBySimilarity

    @classmethod
    def described(cls, inputs: JudgeInputs) -> dict[str, Any]:
        return {"judge_backend": cls.name}
