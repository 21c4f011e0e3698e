#!/usr/bin/env bash
# The checks that need a CUDA GPU, as one script (run it on a machine with one):
#   bash tools/gpu_check.sh [--record]
# --record writes the measured bf16/fp16 agreement into weights/manifest.yaml so that
# precision=auto may pick reduced precision on CUDA (it stays fp32 there until measured).
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0))"
hdr-plugin info --device cuda
for p in fp32 bf16 fp16; do
  hdr-plugin bench --device cuda --precision "$p" --size 1920x1080 --repeat 3 "$@"
  hdr-plugin bench --device cuda --precision "$p" --size 3840x2160 --repeat 2 --tile 1024
done
python -m pytest -q -rs tests/test_export.py tests/test_devices.py tests/test_pipeline.py   # CUDA tests run instead of skipping
