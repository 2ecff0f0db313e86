"""The judge stage's settings: the judge, its prompt and its score cache. A backend's own options stay in
its module (transforms/judge/backends/); all are composed into the run's Settings (pipelines/settings.py)."""
from __future__ import annotations

import os
from dataclasses import dataclass

from judgemine.pipelines.run.settings import ImageSettings, RunSettings
from judgemine.transforms.common.devices import Dtype
from judgemine.transforms.common.images import DEFAULT_CACHE_BYTES
from judgemine.transforms.common.options import above, at_least, setting
from judgemine.transforms.judge.backends import JUDGES
from judgemine.transforms.judge.prompt import PromptFormat, PromptPreset, prompt_format

DEMO_JUDGE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "models",
                          "tiny-judge")  # judge_model's default, in the repository (setup.py maps the package on it)


@dataclass(frozen=True)
class JudgeSettings:
    """Which judge, its prompt, its weights and its cache."""
    judge_model: str = setting("models/tiny-judge", ("judge",), "local folder of the judge chat model (the default, "
                               "the tiny demo judge of `make models`, is found in the repository from any working "
                               "directory)", group="judge")
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
    judge_group_pairs: int = setting(512, (), "pairs scored together, then kept: whole queries, at least this "
                                     "many pairs of a chunk (0 = the whole chunk as one group); a group's scores "
                                     "depend only on the group, so a resumed chunk scores as an uninterrupted one",
                                     group="judge", range=at_least(0))
    judge_checkpoint_seconds: float = setting(60.0, (), "scored groups reach the score cache at least this often "
                                              "inside a chunk (and at its end, and when the stage fails or is "
                                              "interrupted): a SIGKILL loses at most this long plus one group",
                                              group="judge", range=above(0))

    @property
    def prompt(self) -> PromptFormat:
        """The judge prompt format: the preset with any part the settings replace."""
        return prompt_format(self.judge_prompt, self.judge_template, self.judge_instruction, self.judge_answers)


SETTINGS = JudgeSettings


@dataclass(frozen=True)
class JudgeStageSettings(JudgeSettings, ImageSettings, RunSettings):
    """What the judge stage is given: its own settings, the images' root and limits (it shows the images ingest
    checked) and the run's."""


GIVEN = JudgeStageSettings
