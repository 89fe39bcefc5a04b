#!/usr/bin/env bash
# Runs once in the new environment, from the workflow's working directory (the repository root).
set -euo pipefail
if ! command -v nvidia-smi >/dev/null 2>&1; then
    pip install torch==2.13.0  # no GPU: the CPU build (a plain `torch` resolves to a CUDA build)
fi
pip install -e ".[all]"
