"""The run's one seed, declared with the mining rule (its help is in the mine section) and read by the index stage
too: every random choice draws from it (the mine stage's fallback and random sampling, an index's training
sample)."""
from __future__ import annotations

from dataclasses import dataclass

from judgemine.transforms.common.options import at_least, setting


@dataclass(frozen=True)
class Seeded:
    """The seed of every random choice."""
    seed: int = setting(0, ("index", "mine"), "seed of every random choice (fallback sampling, index training)",
                        group="mine", range=at_least(0))
