"""Writes the "Latest results" block of bench/RESULTS.md from bench/results/*.json (bench/harness.py): one table
per benchmark, its scalar figures flattened (`judge.pairs_per_second`), with its date, machine and commit.

    python -m bench.results          # rewrite the block
    python -m bench.results --check  # exit 1 when the block is not what the JSON files give
"""
from __future__ import annotations

import glob
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

from bench.harness import RESULTS, ROOT

PAGE = os.path.join(ROOT, "bench", "RESULTS.md")
BEGIN, END = "<!-- results:begin (python -m bench.results) -->", "<!-- results:end -->"


def _flat(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _flat(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(value, (int, float, str, bool)) or value is None:
        yield prefix, value


def block() -> str:
    parts = [BEGIN, ""]
    for path in sorted(glob.glob(os.path.join(RESULTS, "*.json"))):
        with open(path, encoding="utf-8") as f:
            result = json.load(f)
        m = result["machine"]
        parts += [f"### `{result['command']}`: {result['date']}", "",
                  f"{m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, GPU: {m['gpu'] or 'none'}; commit "
                  f"`{result['commit']}`; from `bench/results/{os.path.basename(path)}`.", "",
                  "| figure | value |", "|---|---|"]
        parts += [f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |"
                  for k, v in _flat(result["figures"])]
        parts.append("")
    return "\n".join([*parts, END])


def main(argv: list[str]) -> int:
    text = open(PAGE, encoding="utf-8").read()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    new = text[:start] + block() + text[end:]
    if "--check" in argv:
        if new != text:
            print("bench/RESULTS.md: the latest-results block differs from bench/results/ (python -m bench.results)",
                  file=sys.stderr)
            return 1
        return 0
    with open(PAGE, "w", encoding="utf-8") as f:
        f.write(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
