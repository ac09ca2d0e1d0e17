#!/usr/bin/env bash
# Throughput benchmarks on a CUDA machine. Run from the repository root: bash benchmarks/gpu.sh
#   1. batching (bench_batching): unbatched vs batch 8 and 16, and cross-video bundles vs one video at a time,
#      WER beside each; once in float16 and once in int8_float16;
#   2. the engine (bench_throughput): one and two workers per GPU (gpus_per_worker 1.0 and 0.5), unbatched and
#      batched (batch 8).
# GPU memory per process is sampled with nvidia-smi once a second into results/gpu_memory.csv (the peak per pid
# is each actor's memory). Record the machine (nvidia-smi -L) with the figures in benchmarks/README.md.
# MODEL=/path/to/ctranslate2-model overrides the model; without it the first local faster-whisper model found
# in the Hugging Face cache (small.en, base.en, small, base, in that order) is used, else the bundled tiny.en.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
QUICK=${QUICK:-}            # QUICK=--quick for the small corpus
OUT=benchmarks/results
mkdir -p "$OUT"

"$PY" - <<'PY' || { echo "no CUDA device visible to CTranslate2: nothing to run" >&2; exit 2; }
import ctranslate2, sys
n = ctranslate2.get_cuda_device_count()
print(f"CUDA devices: {n}")
sys.exit(0 if n > 0 else 1)
PY

if [ -z "${MODEL:-}" ]; then
  MODEL=$("$PY" - <<'PY'
import os
from pathlib import Path
hub = Path(os.environ.get("HF_HUB_CACHE", Path(os.environ.get("HF_HOME", Path.home() / ".cache/huggingface")) / "hub"))
for name in ("small.en", "base.en", "small", "base"):
    for snap in sorted(hub.glob(f"models--Systran--faster-whisper-{name}/snapshots/*")):
        if (snap / "model.bin").is_file():
            print(snap)
            raise SystemExit
print("bundled")
PY
)
fi
echo "model: $MODEL"
GPUS=$("$PY" -c "import ctranslate2; print(ctranslate2.get_cuda_device_count())")
nvidia-smi -L | tee "$OUT/gpu_machine.txt" || true

MEM_PID=""
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-compute-apps=timestamp,pid,process_name,used_memory --format=csv -l 1 > "$OUT/gpu_memory.csv" &
  MEM_PID=$!
  trap '[ -n "$MEM_PID" ] && kill "$MEM_PID" 2>/dev/null || true' EXIT
fi

for CT in float16 int8_float16; do
  echo "== batching: unbatched vs batch 8, 16; bundles of 4 and 16 videos at batch 16 ($CT)"
  "$PY" -m benchmarks.bench_batching $QUICK --device cuda --compute-type "$CT" --model "$MODEL" \
    --batch-sizes 1,8,16 --bundle-sizes 4,16 --bundle-batch 16 --no-save | tee "$OUT/gpu_batching_$CT.txt"
done

for BS in 1 8; do
  echo "== one worker per GPU, batch $BS"
  "$PY" -m benchmarks.bench_throughput $QUICK --device cuda --compute-type float16 --model "$MODEL" \
    --workers "$GPUS" --gpus-per-worker 1.0 --batch-size "$BS" --no-save | tee "$OUT/gpu_1_per_gpu_b$BS.txt"

  echo "== two workers per GPU (gpus_per_worker 0.5), batch $BS"
  "$PY" -m benchmarks.bench_throughput $QUICK --device cuda --compute-type float16 --model "$MODEL" \
    --workers $((GPUS * 2)) --gpus-per-worker 0.5 --batch-size "$BS" --no-save | tee "$OUT/gpu_2_per_gpu_b$BS.txt"
done

echo "== peak GPU memory per process (MiB)"
[ -n "$MEM_PID" ] && kill "$MEM_PID" 2>/dev/null && MEM_PID=""
awk -F', ' 'NR > 1 { gsub(/ MiB/, "", $4); if ($4 + 0 > peak[$2 " " $3]) peak[$2 " " $3] = $4 + 0 }
            END { for (p in peak) print p ": " peak[p] }' "$OUT/gpu_memory.csv" | tee "$OUT/gpu_memory_peaks.txt"
