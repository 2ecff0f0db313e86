"""`--judge-backend cross-encoder`: a sentence-transformers `CrossEncoder` folder as the judge, the score its
own activation of its one logit (sigmoid unless the folder names another), as `CrossEncoder.predict` gives
it. Text pairs only: the judge stage refuses a run with images before it starts (pipelines/judge/stage.py). A pair
longer than the model's `max_seq_length` is refused (NaN, counted as too long), never judged truncated."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from judgemine.transforms.common.devices import DTYPES, resolve_device
from judgemine.transforms.common.sides import Side
from judgemine.transforms.judge.base import Capabilities, JudgeBackend, JudgeModel
from judgemine.transforms.judge.scoring import where_fits


class CrossEncoderJudge(JudgeBackend):
    name: ClassVar[str] = "cross-encoder"
    capabilities: ClassVar[Capabilities] = Capabilities(images=False, text_only=True, models=("classifier",))

    def __init__(self, model: JudgeModel, options: Any) -> None:
        from sentence_transformers import CrossEncoder
        self.model = CrossEncoder(model.path, device=resolve_device(model.device), local_files_only=True,
                                  model_kwargs={"dtype": DTYPES[model.dtype]})
        if self.model.num_labels != 1:
            raise ValueError(f"{model.path}: a cross-encoder judge needs one output (a relevance score); this "
                             f"model has {self.model.num_labels} labels")
        self.batch_size = model.batch_size
        self.limit = int(self.model.max_seq_length)

    def score(self, queries: Sequence[Side], candidates: Sequence[Side]) -> np.ndarray:
        for side in (*queries, *candidates):
            if side.image:
                raise ValueError(f"the cross-encoder judge reads text pairs only; a pair has an image ({side.image})")
        pairs = [(q.text, c.text) for q, c in zip(queries, candidates)]
        if not pairs:
            return np.zeros(0, np.float32)
        lengths = [len(ids) for ids in self.model.tokenizer([p[0] for p in pairs], [p[1] for p in pairs],
                                                            truncation=False)["input_ids"]]

        def predict(idx: list[int]) -> np.ndarray:
            return np.asarray(self.model.predict([pairs[i] for i in idx], batch_size=self.batch_size,
                                                 convert_to_numpy=True, show_progress_bar=False), np.float32)
        return where_fits(lengths, self.limit, predict)
