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

# Issue 11: meta-training throughput per regime on the GPU (bf16 autocast, as `iai train` runs on
# CUDA), side by side with the step-by-step path (--compare), then `iai bench cost` up to 65,536
# (the iterative step torch.compile'd with frozen weights, as on the CPU; --no-compile for eager).
# Timings inside both commands are bracketed by torch.cuda.synchronize, memory is the CUDA
# allocator's peak (max_memory_allocated after reset_peak_memory_stats).
start=$(date +%s)
timeout 240 $PY -m iai.cli bench train --device "$DEVICE" --iterations ${TRAIN_ITERATIONS:-50} --compare \
    --out "$OUT/bench_train.json" 2>&1 | tail -8
echo "bench train: $(( $(date +%s) - start )) s"
start=$(date +%s)
timeout 400 $PY -m iai.cli bench cost --device "$DEVICE" --max-n ${MAX_N:-65536} --tasks ${COST_TASKS:-8} \
    --time-cap 60 --memory-cap 60000 --out "$OUT/bench_cost.json" 2>&1 | tail -20
echo "bench cost: $(( $(date +%s) - start )) s"
$PY - "$OUT/bench_cost.json" "$OUT/bench_train.json" <<'PYEOF'
import sys, json
cost, train = (json.load(open(p)) for p in sys.argv[1:3])
print("cost on", cost["device_name"], "n =", cost["n"])
for regime, r in cost["regimes"].items():
    print(regime, "iterative_s", [round(t, 4) for t in r["iterative_s"]])
    print(regime, "one_shot_s ", [None if t is None else round(t, 4) for t in r["one_shot_s"]])
    print(regime, "peak MB it/1s", r["iterative_peak_mb"][-1], r["one_shot_peak_mb"])
print("claim 6:", json.dumps(cost["claim6"], indent=1))
for name, r in train["runs"].items():
    print(f"train {name}: {r['iterations_per_s']:.3g} it/s, {r['task_steps_per_s']:.4g} task-steps/s, "
          f"{r['flops_per_s'] / 1e12:.3g} TFLOP/s, MFU {r['mfu']}, speed-up over step by step {r.get('speedup')}")
PYEOF
