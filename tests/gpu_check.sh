#!/usr/bin/env bash
# What a machine with a CUDA GPU runs to prove the GPU path and measure it (CI has no GPU), sized to
# fit one ~9-minute call (each part has its own timeout; the most wanted numbers come first):
#   1. `iai bench cost` up to n = 65,536: iterative vs one shot per regime, wall time and the CUDA
#      allocator's peak, both sides eager (COST_COMPILE=1: both torch.compile'd with frozen weights and
#      replayed as CUDA graphs, one one-shot graph per n: give it a longer COST_TIMEOUT); COST_TASKS
#      tasks per call, 128 by default: fewer leave a step's launches timed; claim 6 judged on it,
#   2. `iai bench train --compare`: meta-training throughput per regime under bf16 autocast (as
#      `iai train` runs on CUDA), side by side with the step-by-step path, and MFU,
#   3. the same for params/paper.yaml's larger model and batches (what its 20,000 iterations cost),
#   4. the CUDA tests: learners match the CPU's numbers, bf16 training, CUDA memory peaks,
#   5. the throughput gain of packing PACK trainings onto the GPU at once (packing.json).
# Timings inside the commands are bracketed by torch.cuda.synchronize.
# Files under OUT: bench_cost.{json,png,log}, bench_train.json, bench_train_paper.json, test_cuda.log,
# packing.json.
# Usage: OUT=folder DEVICE=cuda tests/gpu_check.sh   (from the repository root; DEVICE=cpu for a dry run)
set -uo pipefail
OUT=${OUT:-gpu_check}
DEVICE=${DEVICE:-cuda}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"

start=$(date +%s)
timeout "${COST_TIMEOUT:-270}" $PY -m iai.cli bench cost --device "$DEVICE" --max-n "${MAX_N:-65536}" \
    --tasks "${COST_TASKS:-128}" --time-cap 60 --memory-cap 60000 ${COST_COMPILE:+--compile} \
    --out "$OUT/bench_cost.json" 2>&1 \
    | tee "$OUT/bench_cost.log" | grep -v "^bench cost"
echo "bench cost: $(( $(date +%s) - start )) s"

start=$(date +%s)
timeout "${TRAIN_TIMEOUT:-100}" $PY -m iai.cli bench train --device "$DEVICE" --iterations "${TRAIN_ITERATIONS:-50}" \
    --compare --out "$OUT/bench_train.json" 2>&1
echo "bench train: $(( $(date +%s) - start )) s"

start=$(date +%s)
timeout "${PAPER_TIMEOUT:-75}" $PY -m iai.cli bench train --params params/paper.yaml --family linreg_d8 \
    --device "$DEVICE" --iterations "${PAPER_ITERATIONS:-10}" --out "$OUT/bench_train_paper.json" 2>&1
echo "bench train (paper.yaml): $(( $(date +%s) - start )) s"

start=$(date +%s)
timeout "${TEST_TIMEOUT:-120}" $PY -m pytest -q -p no:cacheprovider -rs tests/test_cuda.py 2>&1 \
    | tee "$OUT/test_cuda.log" | tail -15
echo "cuda tests: $(( $(date +%s) - start )) s"

# 5. Trainings packed onto the GPU (workflow/profiles/gpu: `resources: gpu=4` slots): PACK processes of
#    `iai bench train` at once against one alone; the gain in throughput is PACK x t(1) / t(PACK).
timeout "${PACK_TIMEOUT:-150}" $PY - "$OUT" "$DEVICE" "${PACK:-4}" <<'PYEOF'
import json, subprocess, sys, time
out, device, pack = sys.argv[1], sys.argv[2], int(sys.argv[3])
cmd = [sys.executable, "-m", "iai.cli", "bench", "train", "--device", device, "--family", "linreg", "--iterations", "30"]
seconds = {}
for k in (1, pack):
    start = time.perf_counter()
    procs = [subprocess.Popen(cmd + ["--out", f"{out}/pack_{k}_{i}.json"], stdout=subprocess.DEVNULL) for i in range(k)]
    codes = [p.wait() for p in procs]
    seconds[k] = time.perf_counter() - start
    print(f"{k} training process(es) at once: {seconds[k]:.1f} s, exit codes {codes}")
gain = pack * seconds[1] / seconds[pack]
json.dump({"pack": pack, "seconds": seconds, "throughput_gain": gain}, open(f"{out}/packing.json", "w"), indent=2)
print(f"packing {pack} trainings: {gain:.2f}x the throughput of one at a time")
PYEOF

$PY - "$OUT" <<'PYEOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
def load(name):
    try:
        return json.loads((out / name).read_text())
    except (OSError, ValueError) as err:
        print(f"{name}: missing ({err})")
cost = load("bench_cost.json")
if cost:
    print("cost on", cost["device_name"], "n =", cost["n"])
    for regime, r in cost["regimes"].items():
        print(regime, "compiled: iterative", r["iterative_compiled"], "one shot", r.get("one_shot_compiled", False),
              "compile_s", r["iterative_compile_s"], r["compile_error"] or "")
        print(regime, "iterative_s", [round(t, 4) for t in r["iterative_s"]])
        print(regime, "one_shot_s ", [None if t is None else round(t, 4) for t in r["one_shot_s"]])
        print(regime, "peak MB it / one shot", r["iterative_peak_mb"][-1], r["one_shot_peak_mb"][-1])
    print("claim 6 (descriptive):", json.dumps(cost["claim6"]))
    from iai.analysis.cost import judge_cost
    judged = judge_cost(cost, {})
    print("claim 6 verdict:", judged["verdict"], "-", judged["explanation"])
for name in ("bench_train.json", "bench_train_paper.json"):
    train = load(name)
    for run, r in (train or {}).get("runs", {}).items():
        print(f"{name} {run}: {r['iterations_per_s']:.3g} it/s, {r['task_steps_per_s']:.4g} task-steps/s, "
              f"{r['flops_per_s'] / 1e12:.3g} TFLOP/s, MFU {r['mfu']}, speed-up over step by step {r.get('speedup')}")
PYEOF
