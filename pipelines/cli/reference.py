"""The reference pages under docs/reference/, written from the declarations themselves (settings, the stage
table, the command list, the export and backend registries), so they cannot drift: `make docs` writes them, and
a test (run by CI) fails when the committed pages differ from what the code would write.

    python -m judgemine.pipelines.cli.reference docs/reference          # write
    python -m judgemine.pipelines.cli.reference docs/reference --check  # exit 1 and name the pages that differ
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import os
import sys
import typing
from collections.abc import Iterable
from typing import Any

from judgemine.pipelines.cli.commands import COMMANDS
from judgemine.pipelines.outputs.exports import EXPORTS
from judgemine.pipelines.run.fingerprints import shaping
from judgemine.pipelines.settings import FIELDS, TYPES
from judgemine.pipelines.stages import STAGES
from judgemine.transforms.common.options import choices_of, kind_of
from judgemine.transforms.common.registry import Registry
from judgemine.transforms.embed.backends import EMBEDDERS
from judgemine.transforms.judge.backends import JUDGES

HEADER = ("<!-- Written by `make docs` (pipelines/cli/reference.py) from the code: edit the declarations, not this "
          "page. -->\n")
WIDTH = "100"  # argparse wraps help to the terminal: the pages are written at one width


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(head: list[str], rows: Iterable[list[Any]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _default(value: Any) -> str:
    return "(none)" if value in ("", (), None) else f"`{value}`"


def _allowed(f: dataclasses.Field[Any], hint: Any) -> str:
    allowed = choices_of(f, hint)
    if allowed:
        return ", ".join(f"`{c}`" for c in allowed)
    rng = f.metadata.get("range")
    return kind_of(hint) + (f" {rng.rule}" if rng else "")


def _shapes(f: dataclasses.Field[Any]) -> str:
    return ", ".join(f.metadata["shapes"]) or "none"


def settings_page() -> str:
    out = [HEADER, "# Settings\n\n", "Every setting is a flag (`--top-k`) and a YAML key (`top_k`) of `--config`; a "
           "flag overrides the config, which overrides the default. *Shapes* lists the stages whose output the setting "
           "changes: those stages' fingerprints hold it, so changing it reruns exactly them and what reads them "
           "(\"none\": speed, place or retries only). A backend's own settings apply only while it is chosen.\n"]
    groups: dict[str, list[dataclasses.Field[Any]]] = {}
    for f in FIELDS:
        groups.setdefault(f.metadata["group"], []).append(f)
    for group, fields in groups.items():
        out.append(f"\n## {group}\n\n")
        out.append(_table(["flag", "default", "values", "shapes", "what it does"],
                          [[f"`--{f.name.replace('_', '-')}`", _default(f.default), _allowed(f, TYPES[f.name]),
                            _shapes(f), f.metadata["help"]] for f in fields]))
    return "".join(out)


def stages_page() -> str:
    out = [HEADER, "# Stages\n\n", "The stage table (pipelines/stages.py), in run order. A stage's fingerprint chains "
           "the commits of the stages it reads, the settings that shape it, its input files and its logic version; "
           "a backend's own settings count only while that backend runs.\n\n"]
    rows = []
    for s in STAGES:
        declared = [name for name, on in (("accounting", s.accounting), ("manifest", s.manifest),
                                          ("plan estimate", s.estimate), ("publishes the run", s.completes_run),
                                          ("input files", s.inputs), ("outdated check", s.outdated)) if on]
        rows.append([f"`{s.name}`", ", ".join(s.upstream) or "(inputs)", s.version or "-",
                     ", ".join(f"`{n}`" for n in shaping(s.name)), ", ".join(["stages/" + s.name, *s.publishes]),
                     s.throughput or "-", ", ".join(declared) or "-"])
    out.append(_table(["stage", "reads", "version", "fingerprint settings", "writes", "rate of", "declares"], rows))
    return "".join(out)


def cli_page() -> str:
    from judgemine.pipelines.cli.parser import parsers
    subparsers = parsers()[1]
    out = [HEADER, "# Commands\n\n", "`judgemine <command> [flags] [beam pipeline options]`. Exit codes: 0 done, 1 "
           "failed, 2 a user error, 3 `status`: not up to date, 4 `--output` held by a live run.\n\n",
           _table(["command", "what it does"], [[f"`{c.name}`", c.help] for c in COMMANDS])]
    for c in COMMANDS:
        blocks = _help_of(subparsers[c.name]).rstrip().split("\n\n")
        kept = [b for b in blocks if not b.startswith("usage:") and not b.split("\n")[0].endswith(" settings:")]
        takes = "Takes every run setting as a flag ([settings.md](settings.md)).\n\n" if len(kept) < len(blocks) - 1 \
            else ""
        out.append(f"\n## {c.name}\n\n{takes}```text\n" + "\n\n".join(kept) + "\n```\n")
    return "".join(out)


def _help_of(parser: argparse.ArgumentParser) -> str:
    """argparse wraps help to the terminal's width: the pages are written at one width, whatever the terminal."""
    before = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH
    try:
        return parser.format_help()
    finally:
        if before is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = before


def _options(cls: type) -> list[list[str]]:
    hints = typing.get_type_hints(cls)
    return [[f"`--{f.name.replace('_', '-')}`", _default(f.default), _allowed(f, hints[f.name]), _shapes(f),
             f.metadata["help"]] for f in dataclasses.fields(cls)]


def _doc(member: type) -> str:
    text = inspect.getdoc(sys.modules[member.__module__]) or inspect.getdoc(member) or ""
    return text.split("\n\n")[0].replace("\n", " ")


def _members(title: str, registry: Registry[Any], facts: Any) -> str:
    out = [f"\n## {title}\n\nChosen by `--{registry.setting.replace('_', '-')}`; a plugin registers under the entry "
           f"point group `{registry.group}`.\n"]
    for name, member in registry.members().items():
        out.append(f"\n### `{name}`\n\n{_doc(member)}\n\n{facts(member)}\n")
        rows = _options(member.Options)
        out.append("\n" + _table(["flag", "default", "values", "shapes", "what it does"], rows) if rows
                   else "\nNo options of its own.\n")
    return "".join(out)


def plugins_page() -> str:
    def judge(m: Any) -> str:
        c = m.capabilities
        return (f"Images: {'yes' if c.images else 'no'}; model folder: {'yes' if c.needs_model else 'no'}; "
                f"text only: {'yes' if c.text_only else 'no'}; one per machine: "
                f"{'yes' if c.shared_per_machine else 'no'}; counters: {', '.join(c.reports) or 'none'}.")

    def embedder(m: Any) -> str:
        return f"Images: {'yes' if m.capabilities.images else 'no'}."

    def export(m: Any) -> str:
        return (f"Writes `.{m.suffix}`; text only: {'yes' if m.text_only else 'no'}; fallback rows skipped by "
                f"default: {'yes' if m.skips_fallback else 'no'}.")
    return "".join([HEADER, "# Backends and export formats\n\n", "Every member of each registry, with its own "
                    "options (docs/ARCHITECTURE.md, \"Adding a backend\").\n",
                    _members("Judge backends", JUDGES, judge), _members("Embedders", EMBEDDERS, embedder),
                    _members("Export formats", EXPORTS, export)])


PAGES = {"settings.md": settings_page, "stages.md": stages_page, "commands.md": cli_page,
         "plugins.md": plugins_page}


def main(argv: list[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    args.add_argument("folder")
    args.add_argument("--check", action="store_true", help="compare, do not write")
    ns = args.parse_args(argv)
    differ = []
    for name, page in PAGES.items():
        path, text = os.path.join(ns.folder, name), page()
        current = open(path, encoding="utf-8").read() if os.path.exists(path) else None
        if current != text:
            differ.append(path)
            if not ns.check:
                os.makedirs(ns.folder, exist_ok=True)
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text)
    if ns.check and differ:
        print(f"out of date (run `make docs`): {', '.join(differ)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
