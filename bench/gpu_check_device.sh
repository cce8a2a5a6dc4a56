#!/usr/bin/env bash
# The prepared command for a lent device machine (torch preinstalled there, no network, no .venv):
#   mkdir -p .data && cp -r /usr/share/datasets/fashion-mnist .data/    # here, once (.data/ is git-ignored)
#   device run: bash bench/gpu_check_device.sh   with carry [".data"], timeout_s 600
# It runs the gpu-marked tests, then `elfkit gpu-check` at the paper scale inside BUDGET seconds, and copies the
# records to $OUT (where the device tool returns them). Rerunning on a later lease continues unfinished parts
# only if results/paper/gpu_check/ was committed in between (a fresh machine starts bare).
# DATASET=cifar10 runs the slice on CIFAR-10 instead (records in results/paper-cifar10/gpu_check/), if the machine
# holds CIFAR-10 in torchvision's layout under $ELFKIT_DATA (cifar-10-batches-py/; it is too big to carry).
set -uo pipefail
case "${DATASET:-}" in ""|cifar10|cifar100) ;; *) echo "DATASET must be empty, cifar10 or cifar100" >&2; exit 2;; esac
export ELFKIT_DATA="${ELFKIT_DATA:-.data}" PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_gpu_check.py 2>&1 | tail -5
python3 -m elfkit.cli gpu-check --scale paper --budget-s "${BUDGET:-420}" --dataset "${DATASET:-}"
status=$?
where="paper${DATASET:+-$DATASET}"
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT/$where/gpu_check" && cp results/$where/gpu_check/*.json "$OUT/$where/gpu_check/" 2>/dev/null
fi
exit $status
