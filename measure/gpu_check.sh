#!/usr/bin/env bash
# The GPU check of issue #30 item 3 on a lent GPU machine, in under 10 minutes: `render --device gpu` seconds per
# image per preset, and encode img/s on CUDA (bf16 autocast) with its share of the FLOP floor, as one table
# (measure/gpu_check.py; docs/benchmark.md, "The GPU check").
#
# The machine's python3 brings torch with CUDA, torchvision, numpy, pillow, click, tqdm, safetensors and regex;
# the rest travels as wheels in .whl/ (open_clip_torch, ftfy, wcwidth; bpy where a wheel fits that Python and the
# carry limit), installed into /tmp/site first. Arguments go to measure.gpu_check (e.g. --presets fast).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if compgen -G ".whl/*.whl" >/dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1
if command -v nvidia-smi >/dev/null; then nvidia-smi -L; fi
"$PYTHON" -c 'import torch; assert torch.cuda.is_available(), "no CUDA device"; print("torch", torch.__version__, torch.cuda.get_device_name(0))'
exec timeout "${GPU_CHECK_SECONDS:-570}" "$PYTHON" -m measure.gpu_check --device cuda "$@"
