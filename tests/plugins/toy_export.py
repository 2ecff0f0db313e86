"""An export format from outside judgemine: this module plus one entry point line,
`toy-tsv = toy_export:SeparatedExport` in the group `judgemine.exports` (tests/test_plugins.py)."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from judgemine.pipelines.outputs.exports.base import Exporter
from judgemine.transforms.common.options import setting


@dataclass(frozen=True)
class SeparatedOptions:
    toy_tsv_separator: str = setting("\t", (), "what separates the query, the positive and the negatives")


class SeparatedExport(Exporter):
    name = "toy-tsv"
    suffix = "tsv"
    text_only = True
    Options = SeparatedOptions

    def write(self, rows: Iterator[dict[str, Any]], f: TextIO, k: int) -> int:
        n = 0
        for row in rows:
            f.write(self.own.toy_tsv_separator.join([row["query_text"], row["pos_text"], *row["neg_texts"]]) + "\n")
            n += 1
        return n
