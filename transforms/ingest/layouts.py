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


@dataclass(frozen=True)
class FieldMap:
    """The user's own field names (--query-field and the rest; "" keeps the layout's own). Query and positive
    fields, when given, replace layout recognition for every row of every file; the id and subset fields apply
    to whichever layout a row is read in."""
    query: str = ""
    positive: str = ""
    query_image: str = ""
    positive_image: str = ""
    id: str = "query_id"
    subset: str = "dataset"

    def layout(self) -> Layout | None:
        """The layout these names make; None when no query or positive field is named."""
        if not (self.query or self.positive or self.query_image or self.positive_image):
            return None
        return Layout("mapped", "the fields given", (self.query,), self.positive, self.query_image,
                      self.positive_image)

    def problem(self) -> str:
        """Why the mapping cannot be read ("" when it can): each side needs a text or an image field."""
        if self.layout() is None:
            return ""
        missing = [flag for flag, named in (("--query-field (or --query-image-field)", self.query or self.query_image),
                                            ("--positive-field (or --positive-image-field)",
                                             self.positive or self.positive_image)) if not named]
        return f"the field mapping needs {missing[0]} too" if missing else ""


QUERY_NAMES = ("query", "question", "anchor", "sentence1", "text1", "prompt", "input", "title")
POSITIVE_NAMES = ("positive", "answer", "pos", "sentence2", "text2", "response", "output", "document", "passage")


def suggested_mapping(names: list[str]) -> str:
    """The mapping flags for a file in no known layout, its own field names filled in: a name that reads as a
    query and one that reads as a positive, else its first two fields."""
    def named(words: tuple[str, ...], taken: str = "") -> str:
        return next((n for w in words for n in names if w in n.lower() and n != taken), "")
    query = named(QUERY_NAMES) or (names[0] if names else "QUERY")
    positive = named(POSITIVE_NAMES, query) or next((n for n in names if n != query), "POSITIVE")
    return f"--query-field {query} --positive-field {positive} (in a config: query_field: {query}, " \
           f"positive_field: {positive})"


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
