#!/usr/bin/env bash
# The prepared command for a lent device machine (torch preinstalled there, no network, no .venv):
#   mkdir -p .data && cp -r /usr/share/datasets/fashion-mnist .data/    # here, once (.data/ is git-ignored)
#   device run: bash bench/gpu_check_device.sh   with carry [".data"], timeout_s 600
# It runs the gpu-marked tests, then `elfkit gpu-check` at the paper scale inside BUDGET seconds, and copies the
# records to $OUT (where the device tool returns them). Rerunning on a later lease continues unfinished parts
# only if results/paper/gpu_check/ was committed in between (a fresh machine starts bare).
set -uo pipefail
export ELFKIT_DATA="${ELFKIT_DATA:-.data}" PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_gpu_check.py 2>&1 | tail -5
python3 -m elfkit.cli gpu-check --scale paper --budget-s "${BUDGET:-420}"
status=$?
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT/gpu_check" && cp results/paper/gpu_check/*.json "$OUT/gpu_check/" 2>/dev/null
fi
exit $status
