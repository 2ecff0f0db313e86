#!/usr/bin/env bash
# Judge throughput on a GPU machine (no Beam or FAISS needed there): see bench/gpu_judge.py.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
python3 -m bench.gpu_judge "$@"
