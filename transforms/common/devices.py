"""Where models run, and in which weight precision."""
from __future__ import annotations

from typing import Literal

import torch

Dtype = Literal["float32", "bfloat16", "float16"]
Device = Literal["auto", "cpu", "cuda"]
DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(device: str) -> str:
    """"auto" is the GPU when torch sees one, else the CPU."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def device_problem(device: str, flag: str = "--device") -> str:
    """One line when `device` cannot be used by this torch ("" when it can): CUDA asked of a CPU-only build, or
    of a machine where the CUDA build sees no GPU."""
    if device != "cuda" or torch.cuda.is_available():
        return ""
    if torch.version.cuda is None:
        return (f"{flag} cuda: this torch ({torch.__version__}) is a CPU-only build; on a GPU machine install the "
                f"CUDA builds with `make install-gpu` (requirements-gpu.txt), or pass {flag} auto or cpu")
    return (f"{flag} cuda: torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU (check the driver with "
            f"nvidia-smi, and CUDA_VISIBLE_DEVICES), or pass {flag} auto or cpu")
