"""The ingest stage's settings: its input files, their layout, the limits a row must pass and the
chunk every later stage works in. Composed into the run's Settings (pipelines/settings.py)."""
from __future__ import annotations

from dataclasses import dataclass

from judgemine.pipelines.run.settings import ImageSettings, RunSettings
from judgemine.transforms.common.options import above, at_least, setting, within
from judgemine.transforms.ingest.layouts import FieldMap, PairsLayout


@dataclass(frozen=True)
class IngestSettings(ImageSettings):
    """What ingest reads and what a row must be to pass."""
    pairs: tuple[str, ...] = setting((), ("ingest",), "query/positive pair files (JSONL, JSON array, Parquet, "
                                     "CSV/TSV with a header); repeatable", group="ingest")
    corpus: tuple[str, ...] = setting((), ("ingest",), "extra candidate files with id/text/image; repeatable",
                                      group="ingest")
    pairs_layout: PairsLayout = setting("auto", ("ingest",), "field layout of pair rows: auto recognises each row's "
                                        "(UniME-V2 query_text/pos_text, MMEB qry/pos_text, sentence-transformers "
                                        "anchor|query/positive, FlagEmbedding query/pos list)", group="ingest")
    query_field: str = setting("", ("ingest",), "the field (CSV column) holding the query text, in any input "
                               "format: with --positive-field it replaces layout recognition", group="ingest")
    positive_field: str = setting("", ("ingest",), "the field (CSV column) holding the positive text",
                                  group="ingest")
    query_image_field: str = setting("", ("ingest",), "the field holding the query's image path", group="ingest")
    positive_image_field: str = setting("", ("ingest",), "the field holding the positive's image path",
                                        group="ingest")
    id_field: str = setting("query_id", ("ingest",), "the field holding a row's own query id (absent: judgemine "
                            "assigns one by content)", group="ingest")
    subset_field: str = setting("dataset", ("ingest",), "the field holding a row's subset name (absent: the "
                                "file's name)", group="ingest")
    max_reject_share: float = setting(0.5, (), "stop after ingest (exit 2) when more than this share of the rows, "
                                      "or every row of one file, is rejected: a wrong layout, not data to mine; 1 = "
                                      "never stop", group="ingest", range=within(0, 1))
    max_text_chars: int = setting(16384, ("ingest",), "a query, positive or candidate text longer than this many "
                                  "characters is rejected (text_too_long)", group="ingest", range=above(0))
    skip_image_check: bool = setting(False, ("ingest",), "do not open images at ingest (they are then hashed by "
                                     "path)", group="ingest")
    chunk_size: int = setting(0, ("ingest",), "queries (and pool candidates) per chunk: the unit of work of every "
                              "stage, recorded by ingest; 0 = 4096 (the embedder sorts a chunk by length: smaller "
                              "chunks pad more; a 2B judge on a GPU takes about two minutes a chunk at K = 50; a "
                              "killed judge resumes inside its chunk: --judge-checkpoint-seconds)", group="ingest",
                              range=at_least(0))


    @property
    def fields(self) -> FieldMap:
        """The user's field names, as the readers take them."""
        return FieldMap(self.query_field, self.positive_field, self.query_image_field, self.positive_image_field,
                        self.id_field, self.subset_field)


SETTINGS = IngestSettings


@dataclass(frozen=True)
class IngestStageSettings(IngestSettings, RunSettings):
    """What the ingest stage is given: its own settings and the run's."""


GIVEN = IngestStageSettings
