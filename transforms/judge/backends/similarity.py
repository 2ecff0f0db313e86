"""`--judge-backend similarity`: no judge model; the retrieval similarity is the score, the query's
similarity to its own positive plays s_pos. What sentence-transformers' miner does without a cross-encoder,
and the cheap mode for runs too large to judge: every mining rule works on it unchanged. The judge stage then
runs transforms/judge/by_similarity.py's DoFns over the retrieval instead of RunInference (kept out of this
module: backends import no Beam, so the GPU scripts can load them where Beam is absent)."""
from __future__ import annotations

from typing import ClassVar

from judgemine.transforms.judge.base import Capabilities, JudgeKind, NoOptions


class SimilarityJudge(JudgeKind):
    name: ClassVar[str] = "similarity"
    capabilities: ClassVar[Capabilities] = Capabilities(images=True, needs_model=False)
    Options: ClassVar[type] = NoOptions
