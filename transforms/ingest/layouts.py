"""The pair layouts ingest reads: which fields hold the query and the positive in each of the layouts people
already have, how a row's layout is recognised, and the example line each one is shown with (README, errors)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

PairsLayout = Literal["auto", "unime", "mmeb", "sentence-transformers", "flag-embedding"]


@dataclass(frozen=True)
class Layout:
    """Where one layout keeps the query and the positive. `query_text` lists the names it may use (the first
    present wins); `positives_list`: the positive field holds a list, each item one pair."""
    name: str
    title: str
    query_text: tuple[str, ...]
    pos_text: str
    query_image: str = ""
    pos_image: str = ""
    positives_list: bool = False
    example: str = ""

    def fields(self) -> str:
        query = "|".join(self.query_text) + (f" (or {self.query_image})" if self.query_image else "")
        pos = self.pos_text + ("[]" if self.positives_list else "") + (f" (or {self.pos_image})"
                                                                      if self.pos_image else "")
        return f"{query} + {pos}"


LAYOUTS: dict[str, Layout] = {layout.name: layout for layout in (
    Layout("unime", "UniME-V2 / judgemine", ("query_text",), "pos_text", "query_image", "pos_image",
           example='{"query_id": "q1", "query_text": "What is the capital of Peru?", '
                   '"pos_text": "Lima is the capital of Peru."}'),
    Layout("mmeb", "VLM2Vec / MMEB-train", ("qry",), "pos_text", "qry_image_path", "pos_image_path",
           example='{"qry": "<|image_1|>\\nFind a caption for the image.", "qry_image_path": "images/1.jpg", '
                   '"pos_text": "A dog on a beach.", "pos_image_path": ""}'),
    Layout("sentence-transformers", "sentence-transformers (anchor, positive)", ("anchor", "query"), "positive",
           example='{"anchor": "What is the capital of Peru?", "positive": "Lima is the capital of Peru."}'),
    Layout("flag-embedding", "FlagEmbedding (query, pos list)", ("query",), "pos", positives_list=True,
           example='{"query": "What is the capital of Peru?", "pos": ["Lima is the capital of Peru."], '
                   '"neg": ["Quito is the capital of Ecuador."]}'),
)}

CSV_EXAMPLE = "query,positive\nWhat is the capital of Peru?,Lima is the capital of Peru."


def recognise(row: dict[str, Any]) -> Layout | None:
    """The layout whose fields the row has, None when it has none of them: MMEB's `qry`, then any UniME-V2
    field, then FlagEmbedding's `pos` list, then sentence-transformers' `positive`."""
    if "qry" in row or "qry_image_path" in row:
        return LAYOUTS["mmeb"]
    if any(k in row for k in ("query_text", "query_image", "pos_text", "pos_image")):
        return LAYOUTS["unime"]
    if "pos" in row:
        return LAYOUTS["flag-embedding"]
    if "positive" in row or "anchor" in row:
        return LAYOUTS["sentence-transformers"]
    return None


def unknown_layout(row: dict[str, Any]) -> str:
    """The rejects reason of a row in no known layout: the fields it has (bounded)."""
    names = sorted(map(str, row))
    shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
    return f"unknown_layout: fields {shown or '(none)'}"


def expected_fields() -> list[str]:
    """One line per layout: its fields and an example line, for the error that stops a run."""
    return [f"{layout.title} [--pairs-layout {layout.name}]: {layout.fields()}, e.g. {layout.example}"
            for layout in LAYOUTS.values()]
