"""The retrieve stage's settings: K, the near-duplicate cut and how the index is searched. Composed
into the run's Settings (pipelines/settings.py)."""
from __future__ import annotations

from dataclasses import dataclass

from judgemine.pipelines.run.settings import RunSettings
from judgemine.transforms.common.devices import Device
from judgemine.transforms.common.options import above, at_least, setting


@dataclass(frozen=True)
class RetrieveSettings:
    """How many candidates per query, and how the index is searched for them."""
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


SETTINGS = RetrieveSettings


@dataclass(frozen=True)
class RetrieveStageSettings(RetrieveSettings, RunSettings):
    """What the retrieve stage is given: its own settings and the run's."""


GIVEN = RetrieveStageSettings
