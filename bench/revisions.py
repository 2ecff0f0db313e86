"""Another commit of judgemine run beside this checkout in one session (before/after figures from the same
machine state): a git worktree of it, importable as `judgemine` through a link of that name put first on
PYTHONPATH (as bench/gpu/run.sh makes the root importable), so the same venv's `judgemine` runs that commit's code."""
from __future__ import annotations

import os
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def checkout(rev: str, work: str) -> str:
    """The PYTHONPATH entry that makes `import judgemine` load `rev`."""
    tree = os.path.join(work, f"tree-{rev}")
    if not os.path.exists(tree):
        subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", tree, rev], check=True,
                       capture_output=True)
    link = tempfile.mkdtemp(prefix="judgemine-rev-")
    os.symlink(tree, os.path.join(link, "judgemine"))
    return link


def env_for(python_path: str) -> dict[str, str]:
    """The environment of a process that runs the code at `python_path` ("" = this checkout)."""
    if not python_path:
        return dict(os.environ)
    rest = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": python_path + (":" + rest if rest else "")}
