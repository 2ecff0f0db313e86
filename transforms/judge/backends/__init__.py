"""Every judge backend, by name: one module each; adding one = its module + one entry in JUDGES (or, from
another distribution, one `judgemine.judges` entry point: transforms/common/registry.py)."""
from __future__ import annotations

from judgemine.transforms.common.registry import Registry
from judgemine.transforms.judge.backends.cross_encoder import CrossEncoderJudge
from judgemine.transforms.judge.backends.openai import OpenAIServerJudge
from judgemine.transforms.judge.backends.similarity import SimilarityJudge
from judgemine.transforms.judge.backends.transformers import TransformersJudge
from judgemine.transforms.judge.backends.vllm import VLLMJudge
from judgemine.transforms.judge.base import JudgeBackend, JudgeKind, JudgeSpec

JUDGES: Registry[JudgeKind] = Registry("judge backend", "judge_backend", "judge", "judgemine.judges",
                                       (TransformersJudge, VLLMJudge, OpenAIServerJudge, CrossEncoderJudge,
                                        SimilarityJudge))


def load_judge(spec: JudgeSpec) -> JudgeBackend:
    kind = spec.kind
    if not issubclass(kind, JudgeBackend):
        raise ValueError(f"the {kind.name} judge has no model to load: it scores from the retrieval")
    return kind.load(spec.model, spec.options)
