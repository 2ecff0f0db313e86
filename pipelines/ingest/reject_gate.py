"""The stop after ingest: input whose rows are mostly rejected is a wrong layout or a wrong file, not data to
mine, so the run (and `judgemine plan`) ends there with exit 2 and says what it read, why it refused it, and
what it expects, instead of embedding, indexing and judging nothing."""
from __future__ import annotations

import os
from collections import Counter
from typing import Any, TypedDict

from judgemine.pipelines.run.errors import UserError
from judgemine.transforms.ingest.layouts import CSV_EXAMPLE, expected_fields, suggested_mapping

TOP_REASONS = 3
LAYOUT_REASONS = ("unknown_layout", "missing_field", "wrong_type", "not_an_object", "malformed_json",
                  "wrong_column_count", "invalid_utf8")  # a row read in the wrong layout or format
IMAGE_REASONS = ("missing_image", "image_outside_root", "not_a_regular_file")  # image paths read from elsewhere


class FileCount(TypedDict):
    """One input file's rows read, rows rejected, its top reasons ({reason: rows}, the full text of the first
    row of each reason class) and the fields of its rows that nothing reads ({field: rows})."""
    rows: int
    rejected: int
    reasons: dict[str, int]
    unread: dict[str, int]


def top_reasons(reasons: list[str]) -> dict[str, int]:
    """The most frequent reason classes (the text before the colon), each shown by its first full reason."""
    classes = Counter(r.split(":")[0] for r in reasons)
    first: dict[str, str] = {}
    for reason in reasons:
        first.setdefault(reason.split(":")[0], reason)
    return {first[cls]: n for cls, n in classes.most_common(TOP_REASONS)}


def stop_reason(files: dict[str, FileCount], max_share: float) -> tuple[str, dict[str, int]] | None:
    """Why the input is refused, with the reasons to show (None when it is not): a file with every row rejected,
    or more than `max_share` of all rows rejected. `max_share` 1 turns the stop off."""
    if max_share >= 1:
        return None
    rows = sum(f["rows"] for f in files.values())
    rejected = sum(f["rejected"] for f in files.values())
    dead = [path for path, f in files.items() if f["rows"] and f["rejected"] == f["rows"]]
    if dead:
        return (f"every row of {dead[0]} was rejected ({files[dead[0]]['rows']} rows)"
                + (f", and of {len(dead) - 1} more file(s)" if len(dead) > 1 else ""), files[dead[0]]["reasons"])
    if not rows:
        return "the input files hold no rows", {}
    if rejected / rows > max_share:
        merged = sum((Counter(f["reasons"]) for f in files.values()), Counter())
        return (f"{rejected} of {rows} rows ({rejected / rows:.0%}) were rejected, over --max-reject-share "
                f"{max_share:g}", dict(merged))
    return None


def check_rejects(files: dict[str, FileCount], max_share: float, image_root: str, where: str) -> None:
    """Raises the UserError that stops the run: the problem, the top reasons, what the input should look like
    (the layouts with an example line each, or where image paths are read from), and what to do next."""
    stop = stop_reason(files, max_share)
    if stop is None:
        return
    head, reasons = stop
    top = sorted(reasons.items(), key=lambda kv: -kv[1])[:TOP_REASONS]
    classes = {reason.split(":")[0] for reason, _ in top}
    lines = [head, *[f"  {n} x {reason}" for reason, n in top]]
    if classes & set(LAYOUT_REASONS) or not classes:
        layouts = "\n".join(f"  {line}" for line in expected_fields())
        csv_example = CSV_EXAMPLE.replace("\n", "\\n")
        lines.append(f"expected one row per pair in one of these layouts (JSONL, JSON array, Parquet; CSV/TSV with "
                     f"a header of the same names, e.g. {csv_example}):\n{layouts}")
        unknown = next((reason for reason, _ in top if reason.startswith("unknown_layout: fields ")), "")
        if unknown:
            names = unknown.removeprefix("unknown_layout: fields ").split(" and ")[0].split(", ")
            lines.append(f"or name your own fields: {suggested_mapping(names)}")
    if classes & set(IMAGE_REASONS):
        root = image_root or "not set: the current folder"
        lines.append(f"relative image paths are read under --image-root ({root}); pass the folder the paths are "
                     "relative to")
    raise UserError("\n".join([*lines, f"{where}; fix the input, or pass --max-reject-share 1 to mine what is "
                                       "left"]))


def unread_line(files: dict[str, FileCount]) -> str:
    """One line naming the fields no setting reads, per file ("" when every field is read)."""
    named = [f"{os.path.basename(path)}: " + ", ".join(f"{name} ({rows:,} rows)" for name, rows in f["unread"].items())
             for path, f in files.items() if f.get("unread")]
    return ("fields not read (map one with --query-field and the other field flags): " + "; ".join(named)
            if named else "")


def files_of(record: dict[str, Any]) -> dict[str, FileCount]:
    """The per-file counts an ingest record keeps."""
    return dict(record.get("counts", {}).get("files", {}))
