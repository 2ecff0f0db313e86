"""How a judge with a model judges the retrieve chunks: each chunk's pairs asked for, their candidates' text and
images looked up by part, the score cache consulted, the rest scored through RunInference (kept in the cache a
group at a time as they are judged), and every score written to the chunk's part. The transform a JudgeBackend's
`judging()` names (transforms/judge/base.py)."""
from __future__ import annotations

import apache_beam as beam
from apache_beam.ml.inference.base import RunInference

from judgemine.schemas import CANDIDATES
from judgemine.transforms.common.candidates import PoolLookup
from judgemine.transforms.judge.base import JudgeInputs
from judgemine.transforms.judge.handler import JudgeHandler
from judgemine.transforms.judge.pairs import AskForChunk, BuildJudgeRequests, KeyChunkPairs, WriteScores
from judgemine.transforms.judge.score_cache import CachedScores, cache_files


class JudgeWithModel(beam.PTransform):
    def __init__(self, inputs: JudgeInputs) -> None:
        super().__init__()
        self._in = inputs

    def expand(self, chunks: beam.PCollection) -> beam.PCollection:
        spec, ingest, work = self._in.spec, self._in.ingest, self._in.work
        asked = chunks | "AskForChunk" >> beam.ParDo(AskForChunk(ingest)).with_outputs("ids", main="chunk")
        sides = asked.ids | "CandidateSides" >> PoolLookup(ingest.folder("candidates"), CANDIDATES,
                                                            "candidate_id", ["text", "image", "payload"])
        keyed = ({"chunk": asked.chunk, "sides": sides}
                 | "JoinCandidates" >> beam.CoGroupByKey()
                 | "KeyPairs" >> beam.ParDo(KeyChunkPairs(ingest, spec.identity, spec.model.prompt.identity)
                                            ).with_outputs("keys", main="pairs"))
        cached = keyed.keys | "CachedScores" >> CachedScores(cache_files(self._in.cache))
        return ({"pairs": keyed.pairs, "cached": cached}
                | "JoinCached" >> beam.CoGroupByKey()
                | "BuildPairs" >> beam.ParDo(BuildJudgeRequests(ingest, self._in.group_pairs, work))
                | "Judge" >> RunInference(JudgeHandler(spec, self._in.cache, self._in.checkpoint_seconds, work))
                | "WriteScores" >> beam.ParDo(WriteScores(self._in.folder, spec.kind.capabilities.reports)))
