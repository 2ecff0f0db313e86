"""What kind of model a local folder holds, read from its config.json alone (nothing is loaded), so a folder
given to the wrong backend (an embedder as the judge, a chat model as the embedder) is refused in one line
before any stage starts, not minutes later inside a worker."""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Literal

ModelKind = Literal["encoder", "dual-encoder", "chat", "vision-language", "classifier"]
WHAT: dict[str, str] = {
    "encoder": "a text encoder such as a sentence-transformers folder",
    "dual-encoder": "a CLIP-style dual encoder such as CLIP or SigLIP",
    "chat": "a chat model such as Qwen2.5-7B-Instruct",
    "vision-language": "a vision-language chat model such as Qwen2.5-VL-7B-Instruct or VLM2Vec",
    "classifier": "a cross-encoder reranker",
}
GENERATIVE = ("ForCausalLM", "ForConditionalGeneration", "LMHeadModel", "ForVision2Seq", "ForImageTextToText")


def folder_kind(folder: str) -> tuple[ModelKind | None, str]:
    """(kind, its architecture name) from the folder's config.json; (None, "") when it cannot tell. A
    sentence-transformers folder (modules.json) on a causal-LM backbone is an encoder (gte-Qwen2 embedders)."""
    kind, arch = _config_kind(folder)
    if kind in (None, "chat") and os.path.isfile(os.path.join(folder, "modules.json")):
        return "encoder", arch or "sentence-transformers"
    return kind, arch


def _config_kind(folder: str) -> tuple[ModelKind | None, str]:
    try:
        with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError):
        return None, ""
    if not isinstance(config, dict):
        return None, ""
    archs = [a for a in config.get("architectures") or [] if isinstance(a, str)]
    arch = archs[0] if archs else str(config.get("model_type", ""))
    if any(a.endswith(GENERATIVE) for a in archs):
        return ("vision-language" if "vision_config" in config else "chat"), arch
    if any(a.endswith("ForSequenceClassification") for a in archs):
        return "classifier", arch
    if "text_config" in config and "vision_config" in config:
        return "dual-encoder", arch
    if any(a.endswith(("Model", "ForMaskedLM")) for a in archs):
        return "encoder", arch
    return None, arch


def kind_problem(folder: str, accepts: tuple[str, ...], flag: str, backend: str,
                 takers: Mapping[str, tuple[str, ...]] | None = None) -> str:
    """One line when the folder is not a model folder, or its kind is not one the backend takes, naming the
    backends (`takers`: name -> the kinds each takes) that do ("" when it is fine, or its kind cannot be told)."""
    config = os.path.join(folder, "config.json")
    if not os.path.isfile(config):
        return (f"{flag} {folder} has no config.json: not a model folder (empty, or copied in part?); give the "
                "folder that holds the model's config.json and weights")
    kind, arch = folder_kind(folder)
    if not arch:
        return (f"{flag} {folder}: its config.json names no model_type or architectures (or is not JSON): not a "
                "model folder judgemine can load")
    if not accepts or kind is None or kind in accepts:
        return ""
    wanted = " or ".join(WHAT[k] for k in accepts)
    option = backend.split()[0]
    fits = [f"{option} {name}" for name, kinds in (takers or {}).items() if kind in kinds]
    return (f"{flag} {folder} is {WHAT[kind]} ({arch}), but {backend} needs {wanted}: "
            + (f"use {' or '.join(fits)} for this one" if fits else "give it a folder of that kind"))


RANDOM_WEIGHTS = "RANDOM_WEIGHTS.md"  # the marker `judgemine build-tiny-judge` leaves in every model it builds


def random_weights(folder: str) -> bool:
    """A demo model with random weights (its scores mean nothing): the report and the summary say so."""
    return bool(folder) and os.path.isfile(os.path.join(folder, RANDOM_WEIGHTS))


def mark_random(folder: str) -> None:
    with open(os.path.join(folder, RANDOM_WEIGHTS), "w", encoding="utf-8") as f:
        f.write("Built by `judgemine build-tiny-judge` with random weights, for demos and tests: it exercises the\n"
                "machinery, and its scores and vectors mean nothing.\n")
