"""Judge model handlers for RunInference: one element is one chunk's pairs, scored by a backend of
`transforms.judge_backends`, which micro-batches them itself."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Sequence

import numpy as np
from apache_beam.ml.inference.base import ModelHandler

from transforms.judge_backends import TransformersJudge
from transforms.judge_prompt import Side


@dataclass
class JudgeRequest:
    """The pairs of one chunk, a query's pairs contiguous (its positive first). `scores` holds what is
    already known (NaN elsewhere); the model is asked only for the pairs at `todo`, whose sides and cache
    keys are `queries`, `candidates` and `keys`."""
    chunk_index: int
    query_ids: list[str] = field(default_factory=list)
    candidate_ids: list[str] = field(default_factory=list)
    is_positive: list[bool] = field(default_factory=list)
    known: list[float] = field(default_factory=list, repr=False)
    todo: list[int] = field(default_factory=list, repr=False)
    keys: list[str] = field(default_factory=list, repr=False)
    queries: list[Side] = field(default_factory=list, repr=False)
    candidates: list[Side] = field(default_factory=list, repr=False)


@dataclass
class JudgeResult:
    """Scores of the request's `todo` pairs, in that order, and the backend's counters for this request."""
    request: JudgeRequest = field(repr=False)
    scores: np.ndarray = field(repr=False)
    stats: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class JudgeSpec:
    """Everything a worker needs to build its judge backend (picklable, unlike the backend)."""
    backend: str
    model_path: str
    batch_size: int = 16
    dtype: str = "float32"
    device: str = "auto"
    max_model_len: int = 4096
    vllm_gpu_memory_utilization: float = 0.9
    vllm_block_size: int = 0
    server_url: str = ""
    server_model: str = ""
    concurrency: int = 32
    timeout_s: float = 60.0
    retries: int = 4
    image_root: str = ""


def load_backend(spec: JudgeSpec) -> Any:
    if spec.backend == "transformers":
        from transforms.vlm import is_vision_model
        if is_vision_model(spec.model_path):
            from transforms.judge_backends import TransformersVLMJudge
            return TransformersVLMJudge(spec.model_path, spec.batch_size, spec.dtype, spec.device, spec.image_root)
        return TransformersJudge(spec.model_path, spec.batch_size, spec.dtype, spec.device)
    if spec.backend == "vllm":
        from transforms.judge_backends import VLLMJudge
        return VLLMJudge(spec.model_path, spec.dtype, spec.vllm_gpu_memory_utilization, spec.vllm_block_size,
                         spec.max_model_len, image_root=spec.image_root)
    if spec.backend == "openai":
        from transforms.judge_server import OpenAIServerJudge
        if not spec.server_url:
            raise ValueError("--judge-backend openai needs --judge-server-url")
        return OpenAIServerJudge(spec.server_url, spec.server_model or spec.model_path, spec.model_path,
                                 spec.concurrency, spec.timeout_s, spec.retries, image_root=spec.image_root)
    raise ValueError(f"unknown judge backend {spec.backend!r}")


def backend_stats(backend: Any) -> dict[str, float]:
    """Cumulative counters a backend reports (vLLM: its prefix cache); empty for the others."""
    return backend.prefix_cache_stats() if hasattr(backend, "prefix_cache_stats") else {}


class JudgeHandler(ModelHandler[JudgeRequest, JudgeResult, Any]):
    """One ModelHandler for every backend; the backend is built in load_model. A vLLM engine is shared by all
    SDK processes of a worker machine (Beam's large_model: one copy, called through a proxy): an engine claims
    a fraction of the whole accelerator's memory, so one per process would not fit. The other backends load
    one copy per process."""

    def __init__(self, spec: JudgeSpec) -> None:
        super().__init__(min_batch_size=1, max_batch_size=1, large_model=spec.backend == "vllm")
        self._spec = spec

    def load_model(self) -> Any:
        return load_backend(self._spec)

    def run_inference(self, batch: Sequence[JudgeRequest], model: Any,
                      inference_args: Optional[dict[str, Any]] = None) -> Iterable[JudgeResult]:
        for request in batch:
            before = backend_stats(model)
            scores = model.score(request.queries, request.candidates)
            after = backend_stats(model)
            yield JudgeResult(request, scores, {k: after[k] - before.get(k, 0) for k in after
                                                if k.endswith("_tokens")})

    def get_num_bytes(self, batch: Sequence[JudgeRequest]) -> int:
        return sum(len(q.text) + len(c.text) for r in batch for q, c in zip(r.queries, r.candidates))

    def get_metrics_namespace(self) -> str:
        return "judgemine.judge"
