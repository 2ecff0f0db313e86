"""The errors a user can fix: a bad flag, value or type, a missing model folder or input, an output that is a
file, a stage run before the stages it reads. The CLI prints their one line and exits 2; anything else that
stops a run exits 1 (its traceback with --verbose)."""
from __future__ import annotations


class UserError(ValueError):
    """Raised with the one line the user reads: what is wrong and where."""
