#!/usr/bin/env bash
# What a machine with a CUDA GPU runs to prove the GPU path and measure it (CI has no GPU):
#   the CUDA tests (learners match the CPU's numbers, bf16-autocast training, CUDA memory peaks),
#   then `iai bench` on the GPU: wall time and peak memory, iterative vs one-shot, at growing n.
# Usage: OUT=folder SIZES="256 1024 4096" DEVICE=cuda tests/gpu_check.sh   (from the repository root)
set -uo pipefail
OUT=${OUT:-gpu_check}
SIZES=${SIZES:-256 1024 4096 8192}
DEVICE=${DEVICE:-cuda}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$OUT/gpu.txt"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())" | tee -a "$OUT/gpu.txt"
start=$(date +%s)
timeout 90 $PY -m pytest -q -p no:cacheprovider -rs tests/test_cuda.py 2>&1 | tee "$OUT/test_cuda.log" | tail -25
echo "cuda tests: $(( $(date +%s) - start )) s"
start=$(date +%s)
# shellcheck disable=SC2086
timeout 80 $PY -m iai.cli bench --params params/default.yaml --family linreg --untrained --device "$DEVICE" \
    --sizes $SIZES --out "$OUT/cost.csv" 2>&1 | tail -3
echo "bench: $(( $(date +%s) - start )) s"
$PY - "$OUT/cost.csv" <<'PYEOF'
import sys, json
import pandas as pd
d = pd.read_csv(sys.argv[1])
print(d.pivot_table(index=["regime", "mode", "n_train"], columns="metric", values="value").round(4).to_string())
print(json.load(open(sys.argv[1].replace(".csv", ".json"))))
PYEOF
