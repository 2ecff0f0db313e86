"""The index stage's settings: which FAISS index, in how many shards, trained on how many vectors.
Composed into the run's Settings (pipelines/settings.py)."""
from __future__ import annotations

from dataclasses import dataclass

from judgemine.pipelines.run.settings import RunSettings
from judgemine.transforms.common.options import above, at_least, setting
from judgemine.transforms.common.seed import Seeded


@dataclass(frozen=True)
class IndexSettings:
    """The index built over the candidate pool."""
    index_factory: str = setting("Flat", ("index",), "FAISS index_factory string (inner product): Flat (exact), "
                                 "IVF1024,Flat, IVF4096,PQ32, OPQ64,IVF4096,PQ64, HNSW32, ...; auto = picked by "
                                 "pool size from the measured table (docs/choosing-an-index.md)", group="index")
    index_shards: int = setting(1, ("index",), "split the pool into this many shards, each indexed by its own "
                                "worker; each query's top K is merged across them (exact for Flat)",
                                group="index", range=above(0))
    index_train_size: int = setting(0, ("index",), "vectors of a seeded sample of each shard that train an IVF/PQ "
                                    "index; 0 = FAISS's rule of thumb (256 per centroid)",
                                    group="index", range=at_least(0))


SETTINGS = IndexSettings


@dataclass(frozen=True)
class IndexStageSettings(IndexSettings, Seeded, RunSettings):
    """What the index stage is given: its own settings, the run's seed (its training sample) and the run's."""


GIVEN = IndexStageSettings
