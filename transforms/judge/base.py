"""What a judge backend is: the interface every backend implements, its declared capabilities, and the
picklable description a worker builds it from (docs/ARCHITECTURE.md, "Adding a judge backend").

Modelled on Beam's ModelHandler (load once per worker, then score many elements) and datatrove's inference
servers (a base class, one module per backend, a list of them in the package)."""
from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np

from judgemine.schemas.layout import StageFolder
from judgemine.transforms.common.devices import Device, Dtype
from judgemine.transforms.common.images import DEFAULT_CACHE_BYTES, DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS
from judgemine.transforms.common.model_kinds import ModelKind
from judgemine.transforms.common.options import NoOptions
from judgemine.transforms.common.progress import StageWork
from judgemine.transforms.common.sides import Side
from judgemine.transforms.judge.prompt import PromptFormat


@dataclass(frozen=True)
class JudgeModel:
    """The judge model and how to run it: what every backend needs."""
    path: str
    dtype: Dtype = "float32"
    device: Device = "auto"
    batch_size: int = 16
    image_root: str = ""
    prompt: PromptFormat = field(default_factory=PromptFormat)
    image_cache_bytes: int = DEFAULT_CACHE_BYTES  # each worker's decoded images (transforms/common/images.py)
    image_limits: tuple[int, int] = (DEFAULT_MAX_PIXELS, DEFAULT_MAX_BYTES)  # the run's --max-image-pixels/-bytes


@dataclass(frozen=True)
class Capabilities:
    """images: shows images to a vision-language model (a text model reads an image+text side by its text).
    shared_per_machine: one instance per worker machine, shared by its SDK processes (Beam's large_model), for
    engines that claim a fraction of the whole accelerator. reports: cumulative counters `counters()` returns.
    needs_model: False for a judge that scores from the retrieval itself (no model folder, no score cache).
    text_only: refuses any pair with an image (a text cross-encoder), rather than reading its text.
    models: the kinds of model folder it takes (transforms/common/model_kinds.py; empty: any), checked before any
    stage."""
    images: bool
    shared_per_machine: bool = False
    reports: tuple[str, ...] = ()
    needs_model: bool = True
    text_only: bool = False
    models: tuple[ModelKind, ...] = ()


@dataclass(frozen=True)
class JudgeInputs:
    """What the judge stage's transform reads and writes: the committed ingest and embed folders, the
    stage's own (temporary) folder, the judge (resolved: its identity fixed when the stage starts), the score
    cache, how a chunk's judging is kept as it goes (transforms/judge/handler.py), and where its progress goes."""
    ingest: StageFolder
    embed: StageFolder
    folder: StageFolder
    spec: JudgeSpec
    cache: str
    group_pairs: int = 512  # whole queries, at least this many pairs of a chunk, scored together (0: the chunk)
    checkpoint_seconds: float = 60.0  # scored groups reach the cache at least this often inside a chunk
    work: StageWork = StageWork()  # where the pairs done are reported (the stage's progress line)


class JudgeKind:
    """What the registry lists of every judge: its name, capabilities, own settings (`Options`, declared with
    transforms/common/options.py and composed into the run's settings) and the Beam transform that judges a
    stream of retrieve chunks with it (imported there, so this module stays free of Beam)."""
    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    Options: ClassVar[type] = NoOptions

    @classmethod
    def judging(cls) -> Callable[[JudgeInputs], Any]:
        """The PTransform class the judge stage applies to the stream of retrieve chunks."""
        raise NotImplementedError

    @classmethod
    def check_options(cls, options: Any) -> None:
        """Raises ValueError (one line, naming the flag) for own options that cannot work, before any stage runs."""

    @classmethod
    def described(cls, inputs: JudgeInputs) -> dict[str, Any]:
        """What the judge stage's record says of the judge."""
        raise NotImplementedError


class JudgeBackend(JudgeKind, abc.ABC):
    """A judge with a model: (query, candidate) pairs to a score (P(Yes) from the Yes/No logits of a chat
    model, judge/scoring.py, or a cross-encoder's own activation), without Beam, so the same code runs in the
    pipeline, in benchmarks and on a bare GPU machine."""

    @classmethod
    def judging(cls) -> Callable[[JudgeInputs], Any]:
        """The PTransform class the judge stage applies to the retrieve chunks (a judge with a model: pairs, score
        cache and RunInference, transforms/judge/with_model.py)."""
        from judgemine.transforms.judge.with_model import JudgeWithModel
        return JudgeWithModel

    @classmethod
    def described(cls, inputs: JudgeInputs) -> dict[str, Any]:
        """What the judge stage's record says of the judge: the identity its workers loaded and verified."""
        model = inputs.spec.model
        return {"judge_model": model.path, "judge_backend": cls.name, "prompt_version": model.prompt.version,
                "judge_model_id": inputs.spec.identity, "cache": inputs.cache}

    @classmethod
    def identity(cls, model: JudgeModel, options: Any) -> str:
        """Who judges, by content: the model folder's content id with its dtype (schemas/digests.py). A backend
        whose scores come from elsewhere (a server) says what else they depend on. In every score-cache key, and
        computed again by each worker around its load (transforms/judge/handler.py)."""
        from judgemine.schemas.digests import model_id
        return model_id(model.path, model.dtype)

    @classmethod
    def load(cls, model: JudgeModel, options: Any) -> JudgeBackend:
        """The backend for this model folder (a backend may pick an implementation by model kind)."""
        return cls(model, options)

    @abc.abstractmethod
    def __init__(self, model: JudgeModel, options: Any) -> None: ...

    @abc.abstractmethod
    def score(self, queries: Sequence[Side], candidates: Sequence[Side]) -> np.ndarray:
        """float32 scores in pair order; an empty input gives an empty array."""

    def counters(self) -> dict[str, float]:
        """Cumulative values of the counters named in `capabilities.reports`."""
        return {}


@dataclass(frozen=True)
class JudgeSpec:
    """Who judges, looked up once: the registered kind itself (the class, so nothing looks its name up again), the
    model and how to run it, the kind's own options, and the judge's identity by content once `resolved()` (fixed
    when the judge stage starts: in every score-cache key and the stage's record, and what each worker checks its
    load against). Everything a worker needs to build its backend; picklable, unlike the backend."""
    kind: type[JudgeKind]
    model: JudgeModel
    options: Any = field(default_factory=NoOptions)
    identity: str = ""

    def resolved(self) -> JudgeSpec:
        """This spec with the judge's identity as its files (or its server) are now; "" for a judge without a
        model (it scores from the retrieval)."""
        kind = self.kind
        return replace(self, identity=kind.identity(self.model, self.options) if issubclass(kind, JudgeBackend)
                       else "")
