"""Arrow schemas of every judgemine artifact, and the only way stages read and write them."""
from schemas.tables import (
    CANDIDATES,
    EMBEDDINGS,
    INDEX_IDS,
    JUDGE_SCORES,
    QUERIES,
    REJECTS,
    RETRIEVAL,
    SCHEMA_VERSION,
    SCORE_CACHE,
    SHARDS,
    embeddings_schema,
)
from schemas.io import read_table, write_table

__all__ = [
    "CANDIDATES", "EMBEDDINGS", "INDEX_IDS", "JUDGE_SCORES", "QUERIES", "REJECTS", "RETRIEVAL", "SCHEMA_VERSION",
    "SCORE_CACHE",
    "SHARDS", "embeddings_schema", "read_table", "write_table",
]
