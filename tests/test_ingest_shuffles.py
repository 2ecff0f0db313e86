"""Ingest's global checks as Beam shuffles write, byte for byte, what the single-pass oracle (tests/ingest_oracle.py)
writes from the same parsed rows: on every input the project ships (the text and image samples, the official
UniME-V2 example) and on a hostile input built to hit every rule across files, with the pool split over many
parts, and once on separate worker processes."""
from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from conftest import MULTIMODAL, OFFICIAL_EXAMPLE, SAMPLE, write_jsonl
from ingest_oracle import build_pool, query_chunks

from judgemine.pipelines.run.runner import run_one
from judgemine.pipelines.settings import Settings
from judgemine.schemas import CANDIDATES, QUERIES, list_parts, part_name, write_table
from judgemine.schemas.layout import RunLayout
from judgemine.transforms.common.progress import StageWork
from judgemine.transforms.common.rejects import part_of, write_rejects
from judgemine.transforms.ingest.pool import RankGroupStarts, line_range, renumber_chunks
from judgemine.transforms.ingest.records import IdentifyRecords, ImagePolicy, InputFile, ParseInputFile


def _oracle(settings: Settings, directory: str) -> int:
    """The oracle's artifacts for `settings`, written through the same schemas and writer as the stage's; the
    pair rows it read again."""
    parse = ParseInputFile(settings.pairs_layout, settings.fields, settings.max_text_chars, StageWork())
    identify = IdentifyRecords(ImagePolicy(settings.image_root, settings.max_image_pixels, settings.max_image_bytes,
                                           not settings.skip_image_check))
    rows: dict[str, list[dict[str, Any]]] = {"pairs": [], "corpus": [], "rejects": [], "images": []}
    files = [InputFile(p, "pairs") for p in settings.pairs] + [InputFile(p, "corpus") for p in settings.corpus]
    for spec in files:
        for tagged in parse.process(spec):
            for kind, table in identify.process(tagged):
                rows[kind] += table.to_pylist()
    queries, candidates, rejects, repeated = build_pool(rows["pairs"], rows["corpus"])
    size = settings.chunk_size
    for side, chunks, schema in (("queries", query_chunks(queries, size), QUERIES),
                                 ("candidates", [candidates[i:i + size] for i in range(0, len(candidates), size)]
                                  or [[]], CANDIDATES)):
        os.makedirs(os.path.join(directory, side))
        for i, chunk in enumerate(chunks):
            write_table(pa.Table.from_pylist(chunk, schema=schema), os.path.join(directory, side, part_name(i)),
                        schema)
    parts: dict[str, list[dict[str, Any]]] = {}
    for row in rows["rejects"] + rejects:
        parts.setdefault(part_of(row), []).append(row)
    os.makedirs(os.path.join(directory, "rejects"))
    for name, part in parts.items():
        write_rejects(part, os.path.join(directory, "rejects", name))
    return repeated


def _files(directory: str) -> dict[str, bytes]:
    out = {}
    for side in ("queries", "candidates"):
        for path in list_parts(os.path.join(directory, side)):
            out[f"{side}/{os.path.basename(path)}"] = open(path, "rb").read()
    for path in list_parts(os.path.join(directory, "rejects")):
        out[f"rejects/{os.path.basename(path)}"] = open(path, "rb").read()
    return out


def _hostile(tmp_path) -> tuple[list[str], list[str]]:
    """Every rule across two pair files and two corpus files: duplicate query ids (within and across files), the
    same pair again (with its id and without one, within and across files), the
    same query content in both files with different positives, a positive that is also a corpus row, one corpus id
    for two contents (within and across files), one content under two ids, bad rows, and enough distinct
    candidates for many parts."""
    a = write_jsonl(str(tmp_path / "a.jsonl"), [
        {"query_id": "q1", "query_text": "What is red?", "pos_text": "A colour."},
        {"query_id": "q2", "query_text": "what is  RED?", "pos_text": "The colour of blood."},
        {"query_id": "q1", "query_text": "Another query", "pos_text": "Kept out."},
        {"query_text": "no positive"},
        {"query_id": "q1", "query_text": "What is red?", "pos_text": "A colour."},
        {"query_text": "Said twice", "pos_text": "Read once."},
        {"query_text": "Said twice", "pos_text": "Read once."},
        *({"query_id": f"n{i}", "query_text": f"Query number {i}", "pos_text": f"Answer {i % 7}"} for i in range(40)),
    ])
    b = write_jsonl(str(tmp_path / "b.jsonl"), [
        {"query_id": "q2", "query_text": "Duplicate id across files", "pos_text": "Never kept."},
        {"query_id": "q3", "query_text": "What is red?", "pos_text": "A shade of crimson."},
        {"query_text": "Said twice", "pos_text": "Read once."},
        {"query_text": "Said twice", "pos_text": "Read once, with another positive."},
        *({"query_id": f"m{i}", "query_text": f"Query number {i % 9}", "pos_text": f"Reply {i}"} for i in range(30)),
    ])
    c = write_jsonl(str(tmp_path / "c.jsonl"), [
        {"id": "x", "text": "A colour."}, {"id": "x", "text": "Something else."}, {"id": "y", "text": "a  COLOUR."},
        {"text": "No id at all."}, {"id": "z"},
        *({"id": f"d{i}", "text": f"Distractor {i}"} for i in range(60)),
    ])
    d = write_jsonl(str(tmp_path / "d.jsonl"), [{"id": "x", "text": "A colour."}, {"id": "y", "text": "Different."},
                                                {"id": "w", "text": "Distractor 3"}])
    return [a, b], [c, d]


CASES = {
    "text sample": lambda tmp_path, image_root: dict(pairs=tuple(sorted(
        os.path.join(SAMPLE, f) for f in os.listdir(SAMPLE))), chunk_size=128),
    "image sample": lambda tmp_path, image_root: dict(pairs=tuple(
        os.path.join(MULTIMODAL, f) for f in ("pairs_mmeb.jsonl", "pairs_unime.jsonl")),
        image_root=image_root, chunk_size=16),
    "official example": lambda tmp_path, image_root: dict(pairs=(OFFICIAL_EXAMPLE,), skip_image_check=True,
                                                          chunk_size=2),
    "hostile": lambda tmp_path, image_root: dict(zip(("pairs", "corpus"), map(tuple, _hostile(tmp_path))),
                                                 chunk_size=5),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_shuffled_ingest_writes_what_the_single_pass_wrote(case, tmp_path, image_root):
    settings = Settings(output=str(tmp_path / "out"), **CASES[case](tmp_path, image_root))
    workers = ["--direct_num_workers", "2", "--direct_running_mode", "multi_processing"] if case == "hostile" else \
        ["--direct_num_workers", "1"]
    record = run_one("ingest", settings, PipelineOptions(workers))
    repeated = _oracle(settings, str(tmp_path / "oracle"))
    got, want = _files(RunLayout(settings.output).stage("ingest").path), _files(str(tmp_path / "oracle"))
    assert sorted(got) == sorted(want) and got == want
    assert record["counts"]["queries"] > 0 and record["counts"]["candidates"] > 0
    if case == "hostile":
        counts = record["counts"]
        assert counts["rejected_by_reason"] == {"duplicate_corpus_id": 2, "duplicate_query_id": 2,
                                                "missing_field": 2}
        assert counts["repeated_pairs"] == repeated == 3
        assert counts["pairs_in"] == counts["queries"] + counts["rejected_pairs"] + counts["repeated_pairs"]
        assert counts["corpus_in"] == counts["corpus_kept"] + counts["corpus_rejected"]
        assert len(list_parts(RunLayout(settings.output).stage("ingest").folder("candidates"))) > 10


def test_chunks_keep_same_content_queries_together_in_input_order():
    """Groups a..f of queries 0..8 with contents "abcadeafb": a group never splits and joins the chunk of its first
    query's rank; the ranking sees each line range's positions and group starts, never every group at once."""
    def chunked(contents: str, size: int) -> list[list[int]]:
        groups = {c: [i for i, x in enumerate(contents) if x == c] for c in dict.fromkeys(contents)}
        key = line_range(0, 0)
        starts = np.array([(ord(c) % 2, 0, members[0]) for c, members in groups.items()])
        joined = {"positions": [np.arange(len(contents))], "starts": [starts]}
        assigned = list(RankGroupStarts(size).process((key, joined), {key: len(contents), line_range(1, 0): 99}))
        used = [int(c) for _, rows in assigned for c in rows[:, 2]]
        chunk_of = {int(line): int(chunk) for _, rows in (renumber_chunks(a, used) for a in assigned)
                    for _, line, chunk in rows}
        out: dict[int, list[int]] = {}
        for members in groups.values():
            out.setdefault(chunk_of[members[0]], []).extend(members)
        return [out[c] for c in sorted(out)]
    assert chunked("abcadeafb", 3) == [[0, 3, 6, 1, 8, 2], [4, 5], [7]]
    assert chunked("abcadeafb", 2)[0] == [0, 3, 6, 1, 8]  # a group is never split
    assert json.dumps(chunked("abcadeafb", 100)) == json.dumps([[0, 3, 6, 1, 8, 2, 4, 5, 7]])
    assert chunked("aaaab", 2) == [[0, 1, 2, 3], [4]]  # no empty chunk between them
