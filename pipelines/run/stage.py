"""What a stage is: one declaration (pipelines/stages.py lists them in order) that the shared runner
(pipelines/run/runner.py) turns into a run: fingerprint, temporary directory, Beam pipeline, counts, stage.json."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import apache_beam as beam

from judgemine.pipelines.run.artifacts import count_rows
from judgemine.pipelines.run.settings import RunSettings
from judgemine.schemas.layout import RunLayout, StageFolder
from judgemine.transforms.common.progress import StageWork

Counters = dict[str, int]  # the stage's Beam counters (namespace judgemine.<stage>), summed over steps
Given = TypeVar("Given", bound=RunSettings)  # what a stage is given of the settings: its folder's GIVEN


@dataclass(frozen=True)
class StageContext(Generic[Given]):
    """What a stage's functions are given: its settings (its folder's GIVEN, pipelines/settings.py: given), the
    temporary folder it writes (renamed into place when the stage completes), its other published folders by
    name (also temporary), its start time, and where its DoFns report the units of work they finish (its progress
    line, pipelines/run/progress.py)."""
    settings: Given
    folder: StageFolder
    outputs: dict[str, str] = field(default_factory=dict)
    started: float = 0.0
    work: StageWork = StageWork()

    def input(self, stage: str) -> StageFolder:
        """The committed folder of a stage this one reads."""
        return RunLayout(self.settings.output).stage(stage)


@dataclass
class PlanInputs:
    """What `judgemine plan` gives each stage's estimate: the parsed input rows (nothing opened), and what the
    estimates of earlier stages measured or hand on (`measured`: the embedder's dimension for the search's, K
    for the judge's)."""
    pairs: list[dict[str, str]]
    queries: int
    candidates: int
    measured: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Estimate:
    """A stage's share of the plan: seconds here (and their range, `spread`, where samples differ), bytes it
    will write, what it measured (`rates`, `measured`: a phrase for the table), and any counts the plan reports
    (`facts`) with their table lines."""
    seconds: float = 0.0
    spread: tuple[float, float] | None = None  # the seconds' low and high, where the stage measured a spread
    bytes: dict[str, int] = field(default_factory=dict)
    rates: dict[str, float | None] = field(default_factory=dict)
    measured: str = ""
    facts: dict[str, Any] = field(default_factory=dict)
    lines: tuple[str, ...] = ()


@dataclass(frozen=True)
class Stage:
    """name: the command and directory name. upstream: the stages it reads (their commits chain into its
    fingerprint). Its settings are those declared to shape it (pipelines/settings.py). build: adds its transforms
    to a Beam pipeline. count: its stage.json counts, from its Beam counters and what it wrote. Optional: check
    (fails fast before any work), inputs (external files hashed into the fingerprint and recorded), version (of
    its logic, in the fingerprint: bump it whenever a change alters what the stage writes, so an upgrade reruns
    exactly the stages it affects), publishes (directories under OUTPUT it writes besides stages/<name>), record
    (extra stage.json fields), throughput (the count whose rate per second the record reports), work (the units
    its progress line counts: their total, 0 when not known ahead, and their name), outdated (why a committed
    stage with the same fingerprint no longer matches what it read, e.g. an image replaced under the image root;
    "" when it does), gate (what must hold of its committed record for any later stage to run: raises
    UserError, e.g. ingest's share of rejected rows).
    What the run-level outputs read of it: accounting (from its counts: the pair rows it read, `pairs_in`, or
    rejected, `rejected`, and the corpus rows, `corpus`: manifest.json checks every row is a shard row or a
    reject), manifest (sections it adds to manifest.json, from its record), estimate (its share of `judgemine
    plan`), completes_run (its commit publishes the run's rejects/ and manifest.json: the last stage's).
    Upstream stages are listed nearest first, so a missing one is reported as the command to run next."""
    name: str
    upstream: tuple[str, ...]
    build: Callable[[beam.Pipeline, StageContext[Any]], None]
    count: Callable[[StageContext[Any], Counters], dict[str, Any]]
    check: Callable[[Any], None] | None = None
    inputs: Callable[[Any], dict[str, str]] | None = None
    version: str = ""
    publishes: tuple[str, ...] = ()
    record: Callable[[StageContext[Any]], dict[str, Any]] | None = None
    throughput: str = ""
    work: Callable[[StageContext[Any]], tuple[int, str]] = lambda ctx: (0, "units")
    outdated: Callable[[Any, dict[str, Any]], str] | None = None
    accounting: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    manifest: Callable[[Any, dict[str, Any]], dict[str, Any]] | None = None
    estimate: Callable[[Any, PlanInputs], Estimate] | None = None
    completes_run: bool = False
    gate: Callable[[Any, dict[str, Any]], None] | None = None


def queries(ctx: StageContext[Any]) -> tuple[int, str]:
    """The run's queries: the units of work of retrieve and mine."""
    return count_rows(ctx.input("ingest").folder("queries")), "queries"


def spread_chunks(p: beam.Pipeline, chunks: Sequence[Any], work: StageWork) -> beam.PCollection:
    """The stage's chunk descriptors (or tasks of them) (never bulk rows: the data is read inside the DoFns),
    spread over workers, each worker reporting itself started (its progress file) as it takes its first. Create's
    own reshuffle is off wherever one follows (here, index, ingest, score cache): it doubled the spreading and
    made a pipeline of one chunk another shape than one of many."""
    return (p | "ListChunks" >> beam.Create(list(chunks), reshuffle=False) | "SpreadChunks" >> beam.Reshuffle()
            | "ReportStarted" >> beam.ParDo(ReportStarted(work)))


class ReportStarted(beam.DoFn):
    """Passes elements on; its setup tells the driver this worker has started (fused with the stage's next DoFn,
    it costs nothing)."""

    def __init__(self, work: StageWork) -> None:
        self._work = work

    def setup(self) -> None:
        self._work.started()

    def process(self, element: Any) -> Iterable[Any]:
        yield element
