"""Every command in the README is run, so none can drift: judgemine commands for real (their model folders mapped
to the tests' tiny judge, their outputs to a temporary folder), make targets as `make -n` (a target that does not
exist, or a recipe make cannot expand, fails), the download command's flags against its --help. The layout
table's lines are the ones ingest documents, and every relative link points at a file."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import pytest

from judgemine.transforms.ingest.layouts import LAYOUTS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
BIN = os.path.dirname(sys.executable)


def _text() -> str:
    with open(README, encoding="utf-8") as f:
        return f.read()


def readme_commands() -> list[str]:
    """The lines of every ```bash block, continuations joined, trailing comments dropped."""
    commands: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", _text(), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line:
                commands.append(line)
    return commands


def _judgemine(words: list[str], tmp: str, judge: str) -> subprocess.CompletedProcess:
    """A README judgemine command as a user runs it from the repository root, with its model folders mapped to
    the tiny judge (`make models` has not run under `make test`) and its output under `tmp`."""
    args = [judge if w.startswith("/models/") else os.path.join(tmp, w) if i and words[i - 1] == "--output"
            else w for i, w in enumerate(words[1:], start=1)]
    if args[0] in ("run", "plan", "status") and "--judge-model" not in args:
        args += ["--judge-model", judge]
    return subprocess.run([os.path.join(BIN, "judgemine"), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)


def test_every_readme_command_runs(tmp_path, tiny_judge):
    import torch
    commands = readme_commands()
    assert len(commands) >= 8, commands
    for command in commands:
        words = shlex.split(command)
        if words[0] == "make":
            done = subprocess.run(["make", "-n", *words[1:]], cwd=ROOT, capture_output=True, text=True)
            assert done.returncode == 0, (command, done.stderr)
        elif words[:2] == ["hf", "download"]:
            done = subprocess.run([os.path.join(BIN, "hf"), "download", "--help"], capture_output=True, text=True)
            assert done.returncode == 0 and all(w in done.stdout for w in words if w.startswith("--")), command
        elif words[0] == ".venv/bin/judgemine":
            done = _judgemine(words, str(tmp_path), tiny_judge)
            if "--device" in words and words[words.index("--device") + 1] == "cuda" \
                    and not torch.cuda.is_available():
                assert done.returncode == 2 and done.stderr.startswith("judgemine: --device cuda: "), done.stderr
                assert "\n" not in done.stderr.strip()  # refused in one line, before any work
                continue
            assert done.returncode == 0, (command, done.stderr)
            if words[1] == "run":
                assert "train on it?" in done.stdout and "WARNING: the judge" in done.stdout, done.stdout
        else:
            pytest.fail(f"a README command no test runs: {command}")


def test_the_layout_table_shows_each_layouts_documented_line():
    text = _text()
    for layout in LAYOUTS.values():
        assert layout.example.replace("|", "\\|") in text, layout.name


def test_every_relative_link_in_the_readme_and_docs_points_at_a_file():
    pages = [README] + [os.path.join(ROOT, "docs", n) for n in os.listdir(os.path.join(ROOT, "docs"))
                        if n.endswith(".md")]
    for page in pages:
        with open(page, encoding="utf-8") as f:
            for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", f.read()):
                if "://" not in target:
                    assert os.path.exists(os.path.join(os.path.dirname(page), target)), (page, target)


def test_every_backend_the_pages_name_exists():
    from judgemine.transforms.embed.backends import EMBEDDERS
    from judgemine.transforms.judge.backends import JUDGES
    names = {"judge": set(JUDGES.names()), "embed": set(EMBEDDERS.names())}
    pages = [README] + [os.path.join(ROOT, "docs", n) for n in os.listdir(os.path.join(ROOT, "docs"))
                        if n.endswith(".md")]
    for page in pages:
        with open(page, encoding="utf-8") as f:
            for family, name in re.findall(r"--(judge|embed)-backend[ =]([a-z][a-z0-9-]*)", f.read()):
                assert name in names[family], (page, family, name)

