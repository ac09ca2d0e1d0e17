#!/usr/bin/env bash
# Throughput benchmark on a CUDA machine: float16, a larger model when one is available offline, then the same
# with several workers per GPU (gpus_per_worker 0.5). Run from the repository root: bash benchmarks/gpu.sh
# MODEL=/path/to/ctranslate2-model overrides the model; without it the first local faster-whisper model found
# in the Hugging Face cache (small.en, base.en, small, base, in that order) is used, else the bundled tiny.en.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
QUICK=${QUICK:-}            # QUICK=--quick for the small corpus

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

echo "== one worker per GPU"
"$PY" -m benchmarks.bench_throughput $QUICK --device cuda --compute-type float16 --model "$MODEL" \
  --workers "$GPUS" --gpus-per-worker 1.0 --no-save | tee benchmarks/results/gpu_1_per_gpu.txt

echo "== two workers per GPU (gpus_per_worker 0.5)"
"$PY" -m benchmarks.bench_throughput $QUICK --device cuda --compute-type float16 --model "$MODEL" \
  --workers $((GPUS * 2)) --gpus-per-worker 0.5 --no-save | tee benchmarks/results/gpu_2_per_gpu.txt
