"""Arrow schemas of every judgemine artifact, and the only way stages read and write them."""
from judgemine.schemas import storage
from judgemine.schemas.io import (
    footer,
    list_parts,
    num_rows,
    parquet_file,
    part_index,
    part_name,
    read_table,
    shard_name,
    write_table,
)
from judgemine.schemas.tables import (
    CANDIDATES,
    EMBEDDINGS,
    IMAGES,
    INDEX_IDS,
    JUDGE_SCORES,
    QUERIES,
    REJECTS,
    RETRIEVAL,
    SCHEMA_VERSION,
    SCORE_CACHE,
    SHARDS,
    embeddings_schema,
    shard_metadata,
)

__all__ = [
    "CANDIDATES", "EMBEDDINGS", "IMAGES", "INDEX_IDS", "JUDGE_SCORES", "QUERIES", "REJECTS", "RETRIEVAL",
    "SCHEMA_VERSION", "SCORE_CACHE", "SHARDS", "embeddings_schema", "footer", "list_parts", "num_rows", "parquet_file",
    "part_index", "part_name", "read_table", "shard_metadata", "shard_name", "storage", "write_table",
]
