"""No credential in any output: settings and runner options whose name says it holds one (Beam's
`s3_secret_access_key`, an `*_token`, a `*_password`, an Azure connection string) are written as REDACTED in the
manifest and anywhere else a run's options are recorded; the lease and lock file name the command, not its argv."""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "<redacted>"
SECRET_NAME = re.compile(  # judge_pack_tokens (a count) and enable_hot_key_logging are not secrets
    r"secret|password|passwd|credential|connection_string|api_key|access_key|(^|_)(key|token)(_id)?$", re.IGNORECASE)


def redacted(options: Mapping[str, Any]) -> dict[str, Any]:
    """The mapping with every value whose name says secret replaced (set values only: an unset one says nothing)."""
    return {k: (REDACTED if SECRET_NAME.search(k) and v not in (None, "", [], {}) else v) for k, v in options.items()}
