"""The test oracle for ingest's shuffles: the single-pass algorithm ingest ran before its global checks became
Beam shuffles (one worker, every row in (source, line) order). tests/test_ingest_shuffles.py checks that the
stage writes exactly what this writes, on every input the project ships and on a hostile one."""
from __future__ import annotations

from typing import Any

from judgemine.transforms.common.rejects import reject_row


def build_pool(pairs: list[dict[str, Any]], corpus: list[dict[str, Any]]
               ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], int]:
    """Typed query rows, the deduplicated candidate pool and the rejects of the global checks, from records
    that IdentifyRecords has given their ids.

    Rows are taken in (source, line) order, so the first of several rows with one query_id is kept (a later one with the
    same pair is counted as repeated, with another pair rejected), and the first-seen copy of a candidate represents
    it. A corpus row whose own `id` an earlier row used for other content is rejected (duplicate_corpus_id); the
    same content under any ids is one candidate. A query's `excluded_ids` are the positives of every pair with the
    same query content, plus the query itself and its bare image.
    """
    pairs = sorted(pairs, key=lambda r: (r["source"], r["line"]))
    queries: list[dict[str, Any]] = []
    rejects: list[dict[str, Any]] = []
    pool: dict[str, dict[str, Any]] = {}
    positives_of: dict[str, set[str]] = {}
    first_pair: dict[str, tuple[str, ...]] = {}
    repeated = 0
    for r in pairs:
        pair = tuple(r[k] for k in ("query_text", "query_image", "pos_text", "pos_image"))
        if r["query_id"] in first_pair:  # the same pair again is read once; another pair under its id is a reject
            if first_pair[r["query_id"]] == pair:
                repeated += 1
            else:
                rejects.append(reject_row("ingest", "duplicate_query_id", r["source"], r["line"], r["raw"],
                                          r["query_id"]))
            continue
        first_pair[r["query_id"]] = pair
        pool.setdefault(r["pos_id"], {"candidate_id": r["pos_id"], "text": r["pos_text"], "image": r["pos_image"],
                                      "payload": r["pos_payload"], "dataset": r["dataset"]})
        positives_of.setdefault(r["query_content_id"], set()).add(r["pos_id"])
        queries.append(r)
    corpus_ids: dict[str, tuple[str, str, int]] = {}  # the file's own id -> (content id, source, line)
    for r in sorted(corpus, key=lambda r: (r["source"], r["line"])):
        first = corpus_ids.setdefault(r["corpus_id"], (r["candidate_id"], r["source"], r["line"])) \
            if r["corpus_id"] else None
        if first and first[0] != r["candidate_id"]:  # one id, two contents: the first keeps it
            rejects.append(reject_row("ingest", f"duplicate_corpus_id: {r['corpus_id']} has other content at "
                                      f"{first[1]}:{first[2]}", r["source"], r["line"], r["raw"]))
            continue
        pool.setdefault(r["candidate_id"], {k: r[k] for k in ("candidate_id", "text", "image", "payload", "dataset")})
    for q in queries:
        excluded = positives_of[q["query_content_id"]] | {q["query_content_id"]}
        if q["query_image_id"]:
            excluded.add(q["query_image_id"])
        q["excluded_ids"] = sorted(excluded)
    candidates = [pool[k] for k in sorted(pool)]
    return queries, candidates, rejects, repeated


def query_chunks(queries: list[dict[str, Any]], chunk_size: int) -> list[list[dict[str, Any]]]:
    """Each content group in the chunk of its first query's rank in input order // chunk_size (a group is never
    split), chunks numbered densely in order; in a chunk, group after group, each in input order."""
    first_rank: dict[str, int] = {}
    for rank, q in enumerate(queries):
        first_rank.setdefault(q["query_content_id"], rank)
    numbers = sorted({rank // chunk_size for rank in first_rank.values()})
    chunks: list[list[dict[str, Any]]] = [[] for _ in numbers] or [[]]
    for q in sorted(queries, key=lambda q: first_rank[q["query_content_id"]]):  # stable: input order in a group
        chunks[numbers.index(first_rank[q["query_content_id"]] // chunk_size)].append(q)
    return chunks
