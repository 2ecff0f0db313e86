"""The judge's ModelHandler for RunInference: one element is one chunk's pairs, scored a group at a time by the
backend named in the spec (judge/backends/), which micro-batches each group itself. Scored groups are appended to
the score cache at least every `checkpoint_seconds`, at the chunk's end and on any way out of it (an error, a
signal raised here), so a kill loses at most that long plus one group, and a rerun judges only the rest. A group
is a fixed set of pairs of the chunk (transforms/judge/pairs.py), so its scores, which depend on their
row-mates in the last float bits when packed, are the same whether the chunk ran whole or resumed."""
from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from apache_beam.ml.inference.base import ModelHandler

from judgemine.transforms.common.progress import StageWork
from judgemine.transforms.common.sides import Side
from judgemine.transforms.judge.backends import load_judge
from judgemine.transforms.judge.base import JudgeBackend, JudgeSpec
from judgemine.transforms.judge.score_cache import append_scores

log = logging.getLogger(__name__)


class JudgeChanged(RuntimeError):
    """The judge a worker loaded is not the one the stage started with (a folder swapped or rewritten)."""


@dataclass
class JudgeRequest:
    """The pairs of one chunk, a query's pairs contiguous (its positive first). `known` holds the scores already
    in the cache (NaN elsewhere); the model is asked only for the pairs at `todo`, whose sides and cache keys
    are `queries`, `candidates` and `keys`, scored in the `groups` they are cut into; `repeats` are (position,
    index into todo) of pairs met again in the chunk (two queries with the same content), given the same score."""
    chunk_index: int
    query_ids: list[str] = field(default_factory=list)
    candidate_ids: list[str] = field(default_factory=list)
    is_positive: list[bool] = field(default_factory=list)
    known: list[float] = field(default_factory=list, repr=False)
    todo: list[int] = field(default_factory=list, repr=False)
    groups: list[int] = field(default_factory=list)  # where each group of `todo` ends, in order
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

    def __init__(self, spec: JudgeSpec, cache: str, checkpoint_seconds: float, work: StageWork) -> None:
        super().__init__(min_batch_size=1, max_batch_size=1, large_model=spec.kind.capabilities.shared_per_machine)
        self._spec, self._cache, self._every, self._work = spec, cache, checkpoint_seconds, work

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
            scores = self._judge(request, model)
            after = model.counters()
            yield JudgeResult(request, scores, {k: after[k] - before.get(k, 0) for k in after})

    def _judge(self, request: JudgeRequest, model: JudgeBackend) -> np.ndarray:
        """The request's scores, group by group, each kept in the cache by the next checkpoint."""
        scores = np.full(len(request.todo), np.nan, np.float32)
        kept = done = 0  # todo pairs in the cache, and scored
        last = time.monotonic()
        try:
            for end in request.groups:
                scores[done:end] = model.score(request.queries[done:end], request.candidates[done:end])
                self._work.add(end - done)
                done = end
                if time.monotonic() - last >= self._every and done < len(request.todo):
                    kept = self._keep(request, scores, kept, done)
                    last = time.monotonic()
                    log.info("judge: chunk %d: %d scores kept in the score cache", request.chunk_index, done)
        finally:  # the end of the chunk, or a way out of it: what was scored is kept
            self._keep(request, scores, kept, done)
        return scores

    def _keep(self, request: JudgeRequest, scores: np.ndarray, start: int, end: int) -> int:
        """Appends the scores of todo pairs start..end to the cache (a prompt over the judge's context, NaN, is
        not kept); returns end."""
        fresh = scores[start:end]
        scored = ~np.isnan(fresh)
        append_scores(self._cache, [k for k, ok in zip(request.keys[start:end], scored) if ok], fresh[scored].tolist())
        return end
