#!/usr/bin/env bash
# A GPU benchmark module on a machine where judgemine is not installed (no Beam or FAISS needed there):
#   bench/gpu/run.sh judge [--model lm|vl]
#   bench/gpu/run.sh check DIR DIR/root DIR/minilm      (DIR from `python -m bench.gpu.pack DIR`)
#   bench/gpu/run.sh embed DIR/minilm
# The repository root is the `judgemine` import package (setup.py); a link of that name makes it importable.
set -euo pipefail
cd "$(dirname "$0")/../.."
link="$(mktemp -d)"
ln -s "$PWD" "$link/judgemine"
export PYTHONPATH="$link:$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
module="$1"
shift
python3 -m "bench.gpu.$module" "$@"
