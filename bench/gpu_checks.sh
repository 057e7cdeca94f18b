#!/usr/bin/env bash
# The README's GPU checks on a CUDA machine with PyTorch and torchvision (as the device tool's H100 has):
#     bash bench/gpu_checks.sh [train] [step] [compile]      (all three when none is named)
#   train    the paper-scale `lsdseg train` run, eager and with train.compile     (~3 min on an H100)
#   step     bench/gpu_step.py's eager variants: fp32 and bf16 + channels_last   (~4.5 min)
#   compile  bench/gpu_step.py's compiled variant                                 (~3.5 min)
# Together they outlast one 10-minute device call: name the parts per call. Missing packages (pydantic and
# its needs there) come as wheels in .whl/. Outputs land in $OUT (or ./gpu-out) as they are written, so a
# part cut short by its time limit keeps what it measured.
set -uo pipefail
parts=${*:-train step compile}
for part in $parts; do
    case $part in train|step|compile) ;; *) echo "unknown part '$part': name train, step or compile" >&2; exit 2 ;; esac
done
out=${OUT:-gpu-out}
mkdir -p "$out"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=platform${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/device.txt"
python3 -c 'import torch, torchvision, pydantic; print("torch", torch.__version__, "torchvision", torchvision.__version__, "pydantic", pydantic.__version__)' | tee -a "$out/device.txt"
for part in $parts; do
    case $part in
        train) timeout 300 python3 bench/paper_scale.py 2>&1 | tee "$out/paper_scale.txt" ;;
        step) timeout 330 python3 bench/gpu_step.py --steps 10 --max-batch 8 --variants "fp32 eager" "bf16 + channels_last" 2>&1 | tee "$out/gpu_step.txt" ;;
        compile) timeout 300 python3 bench/gpu_step.py --steps 10 --max-batch 8 --variants "bf16 + channels_last + compile" 2>&1 | tee "$out/gpu_step_compile.txt" ;;
    esac
done
