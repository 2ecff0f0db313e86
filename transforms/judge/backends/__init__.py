"""Every judge backend, by name: one module each; adding one = its module + one entry in JUDGES."""
from __future__ import annotations

from judgemine.transforms.common.registry import Registry
from judgemine.transforms.judge.backends.hf_transformers import TransformersJudge
from judgemine.transforms.judge.backends.vllm_offline import VLLMJudge
from judgemine.transforms.judge.backends.vllm_server import OpenAIServerJudge
from judgemine.transforms.judge.base import JudgeBackend, JudgeSpec

JUDGES: Registry[JudgeBackend] = Registry("judge", (TransformersJudge, VLLMJudge, OpenAIServerJudge))


def load_judge(spec: JudgeSpec) -> JudgeBackend:
    return JUDGES.get(spec.backend).load(spec.model, spec.options)
