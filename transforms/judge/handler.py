"""The judge's ModelHandler for RunInference: one element is one chunk's pairs, scored by the backend named in
the spec (judge/backends/), which micro-batches them itself."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from apache_beam.ml.inference.base import ModelHandler

from judgemine.transforms.common.sides import Side
from judgemine.transforms.judge.backends import load_judge
from judgemine.transforms.judge.base import JudgeBackend, JudgeSpec


class JudgeChanged(RuntimeError):
    """The judge a worker loaded is not the one the stage started with (a folder swapped or rewritten)."""


@dataclass
class JudgeRequest:
    """The pairs of one chunk, a query's pairs contiguous (its positive first). `known` holds the scores already
    in the cache (NaN elsewhere); the model is asked only for the pairs at `todo`, whose sides and cache keys
    are `queries`, `candidates` and `keys`; `repeats` are (position, index into todo) of pairs met again in the
    chunk (two queries with the same content), given the same score."""
    chunk_index: int
    query_ids: list[str] = field(default_factory=list)
    candidate_ids: list[str] = field(default_factory=list)
    is_positive: list[bool] = field(default_factory=list)
    known: list[float] = field(default_factory=list, repr=False)
    todo: list[int] = field(default_factory=list, repr=False)
    repeats: list[tuple[int, int]] = field(default_factory=list, repr=False)
    keys: list[str] = field(default_factory=list, repr=False)
    queries: list[Side] = field(default_factory=list, repr=False)
    candidates: list[Side] = field(default_factory=list, repr=False)


@dataclass
class JudgeResult:
    """Scores of the request's `todo` pairs, in that order, and what the backend's counters grew by."""
    request: JudgeRequest = field(repr=False)
    scores: np.ndarray = field(repr=False)
    counters: dict[str, float] = field(default_factory=dict)


class JudgeHandler(ModelHandler[JudgeRequest, JudgeResult, JudgeBackend]):
    """One ModelHandler for every backend; the backend is built in load_model. A backend that declares itself
    shared per machine (vLLM's engine claims a fraction of the whole accelerator) is loaded once per worker
    machine and called through a proxy (Beam's large_model); the others load one copy per process."""

    def __init__(self, spec: JudgeSpec) -> None:
        super().__init__(min_batch_size=1, max_batch_size=1, large_model=spec.kind.capabilities.shared_per_machine)
        self._spec = spec

    def load_model(self) -> JudgeBackend:
        """The backend, loaded between two checks of the judge's identity against the spec's (resolved when the
        stage started): the files (or the server's model) it loaded are the ones the stage's cache keys and record
        name, or the stage fails naming the folder."""
        self._verify("before loading")
        backend = load_judge(self._spec)
        self._verify("while it was loaded")
        return backend

    def _verify(self, when: str) -> None:
        now = self._spec.resolved().identity
        if now != self._spec.identity:
            raise JudgeChanged(f"the judge {self._spec.model.path} changed {when} (id {now}, the judge stage "
                               f"started with {self._spec.identity}): its scores would mix two models; rerun once "
                               "it stays put")

    def run_inference(self, batch: Sequence[JudgeRequest], model: JudgeBackend,
                      inference_args: dict[str, Any] | None = None) -> Iterable[JudgeResult]:
        for request in batch:
            before = model.counters()
            scores = model.score(request.queries, request.candidates)
            after = model.counters()
            yield JudgeResult(request, scores, {k: after[k] - before.get(k, 0) for k in after})

    def get_num_bytes(self, batch: Sequence[JudgeRequest]) -> int:
        return sum(len(q.text) + len(c.text) for r in batch for q, c in zip(r.queries, r.candidates))

    def get_metrics_namespace(self) -> str:
        return "judgemine.judge"
