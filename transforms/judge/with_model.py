"""How a judge with a model judges the retrieve chunks: each chunk's pairs asked for, their candidates' text and
images looked up by part, the score cache consulted, the rest scored through RunInference, and every score
written (and cached). The transform a JudgeBackend's `judging()` names (transforms/judge/base.py)."""
from __future__ import annotations

import os

import apache_beam as beam
from apache_beam.ml.inference.base import RunInference

from judgemine.schemas import CANDIDATES
from judgemine.transforms.common.candidates import PoolLookup
from judgemine.transforms.judge.backends import JUDGES
from judgemine.transforms.judge.base import JudgeInputs
from judgemine.transforms.judge.handler import JudgeHandler
from judgemine.transforms.judge.pairs import AskForChunk, BuildJudgeRequests, WriteScores
from judgemine.transforms.judge.score_cache import CachedScores, cache_files, judge_model_id


class JudgeWithModel(beam.PTransform):
    def __init__(self, inputs: JudgeInputs) -> None:
        super().__init__()
        self._in = inputs

    def expand(self, chunks: beam.PCollection) -> beam.PCollection:
        spec, ingest = self._in.spec, self._in.ingest
        model_id = judge_model_id(spec.model.path, spec.model.dtype)
        asked = chunks | "AskForChunk" >> beam.ParDo(AskForChunk(ingest, model_id, spec.model.prompt.version)
                                                     ).with_outputs("ids", "keys", main="chunk")
        sides = asked.ids | "CandidateSides" >> PoolLookup(os.path.join(ingest, "candidates"), CANDIDATES,
                                                            "candidate_id", ["text", "image"])
        cached = asked.keys | "CachedScores" >> CachedScores(cache_files(self._in.cache))
        return ({"chunk": asked.chunk, "sides": sides, "cached": cached}
                | "JoinChunk" >> beam.CoGroupByKey()
                | "BuildPairs" >> beam.ParDo(BuildJudgeRequests(ingest))
                | "Judge" >> RunInference(JudgeHandler(spec))
                | "WriteScores" >> beam.ParDo(WriteScores(self._in.directory, self._in.cache,
                                                          JUDGES.get(spec.backend).capabilities.reports)))
