"""Which folders are judgemine's to write: an output folder is claimed by a marker file, `.judgemine-run`, when
a run first writes it, and a writing command refuses a folder that holds anything without it (a user's own
folder, a typo of --output): nothing there is removed or overwritten. A run made by an older judgemine (its
`.judgemine.lock` and `stages/`, no marker) is adopted."""
from __future__ import annotations

import json
import os
import time

from judgemine.pipelines.run.errors import UserError
from judgemine.schemas import storage
from judgemine.schemas.layout import RunLayout


def is_ours(output: str) -> bool:
    """The folder carries judgemine's marker (or is an older judgemine's run)."""
    layout = RunLayout(output)
    if storage.is_file(layout.marker):
        return True
    return storage.exists(layout.lock) and storage.exists(layout.stages)  # both: an older judgemine's run


def _contents(output: str) -> list[str]:
    """What the folder holds now, by name (an object store: the first few objects under the prefix)."""
    if not storage.is_remote(output):
        return sorted(os.listdir(output)) if os.path.isdir(output) else []
    return sorted(storage.relative(p, output) for p in list(storage.files(output))[:5])


def claim(output: str) -> None:
    """Before a writing command touches OUTPUT: a new or empty folder (or one holding only the lock file a reader
    left) becomes judgemine's; a folder with judgemine's marker is used; any other folder is refused, exit 2."""
    if is_ours(output):
        return
    layout = RunLayout(output)
    found = [name for name in _contents(output) if name != os.path.basename(layout.lock)]
    if found:
        shown = ", ".join(found[:3]) + (", ..." if len(found) > 3 else "")
        raise UserError(f"--output {output} holds files judgemine did not write ({shown}): give a new or empty "
                        f"folder, or one a judgemine run made (it has {os.path.basename(layout.marker)}); nothing "
                        "was changed")
    storage.make_dirs(output)
    storage.write_text(layout.marker, json.dumps(
        {"written_by": "judgemine", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
         "note": "this folder is a judgemine run: judgemine may replace what it wrote here"}) + "\n")
