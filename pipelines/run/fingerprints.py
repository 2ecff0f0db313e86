"""Which settings a stage's fingerprint holds, and what each stands for: the declarations on the settings
(`shapes=`, pipelines/settings.py and each backend's `Options`) read per stage, a backend's own settings only
while that backend runs, and
model folders by their content (schemas/digests.py), so other weights in the same folder are another model."""
from __future__ import annotations

import hashlib
import json
from typing import Any

from judgemine.pipelines.settings import BACKEND_FAMILIES, FIELDS, Settings, applies
from judgemine.schemas.digests import model_id
from judgemine.transforms.judge.backends import JUDGES


def shaping(stage: str) -> tuple[str, ...]:
    """The settings declared to shape a stage's output: those in its fingerprint."""
    return tuple(f.name for f in FIELDS if stage in f.metadata["shapes"])


def identity(settings: Settings, name: str) -> Any:
    """What a setting's value stands for: a model folder's content id (with its dtype), a plugin backend's name with
    its distribution's version (another version is other code), else the value itself."""
    if name == "embed_model":
        return model_id(settings.resolved_embed_model, settings.embed_dtype)
    if name == "judge_model":
        backend = settings.judge_backend
        needed = backend in JUDGES.names() and JUDGES.get(backend).capabilities.needs_model
        return model_id(settings.judge_model, settings.judge_dtype) if needed else ""
    family = next((f for f in BACKEND_FAMILIES if f.setting == name), None)
    if family is not None and family.origin(getattr(settings, name)):
        return f"{getattr(settings, name)} ({family.origin(getattr(settings, name))})"
    return getattr(settings, name)


def settings_fingerprint(settings: Settings, stage: str) -> str:
    """A stable hash of what the settings that shape `stage` stand for."""
    payload = json.dumps({n: identity(settings, n) for n in shaping(stage) if applies(settings, n)},
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]

