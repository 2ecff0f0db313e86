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
    """Scores of the request's `todo` pairs, in that order."""
    request: JudgeRequest = field(repr=False)
    scores: np.ndarray = field(repr=False)


class TransformersJudgeHandler(ModelHandler[JudgeRequest, JudgeResult, TransformersJudge]):
    def __init__(self, model_path: str, batch_size: int = 16, dtype: str = "float32", device: str = "auto") -> None:
        super().__init__(min_batch_size=1, max_batch_size=1)
        self._args = (model_path, batch_size, dtype, device)

    def load_model(self) -> TransformersJudge:
        return TransformersJudge(*self._args)

    def run_inference(self, batch: Sequence[JudgeRequest], model: TransformersJudge,
                      inference_args: Optional[dict[str, Any]] = None) -> Iterable[JudgeResult]:
        for request in batch:
            yield JudgeResult(request, model.score(request.queries, request.candidates))

    def get_num_bytes(self, batch: Sequence[JudgeRequest]) -> int:
        return sum(len(q.text) + len(c.text) for r in batch for q, c in zip(r.queries, r.candidates))

    def get_metrics_namespace(self) -> str:
        return "judgemine.judge"
