#!/usr/bin/env bash
# One-command GPU check for any machine with an NVIDIA GPU and a CUDA build of torch.
#
#   bench/gpu_check.sh                       # data in shared/data (carried) or ../shared/data
#   bench/gpu_check.sh --data /path/to/data  # any bench/gpu_check.py option passes through
#   bench/gpu_check.sh --dry-run             # set up, print the plan, run nothing
#
# 1. uses the machine's own CUDA torch (PYTHON, default python3): a venv .venv-gpu with
#    --system-site-packages sees it;
# 2. installs gsplat and our dependencies from the wheels in .whl/ (WHEELS), never from the
#    network: make them here with bench/gpu_wheels.sh (list: bench/gpu_requirements.txt);
# 3. runs bench/gpu_check.py: gsplat's JIT build (TORCH_CUDA_ARCH_LIST, default 9.0, cached in
#    .cache/torch_extensions), the cuda-marked tests, render / significance / fine-tune /
#    image-fit benchmarks on biker and playbot; every stage has its own timeout and the whole
#    run a budget (--budget, default 480 s); results are written after every stage to
#    bench/results/gpu_check.json (and the tests write bench/results/gsplat_vs_cpu.json).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEELS=${WHEELS:-.whl}
VENV=${GPU_VENV:-.venv-gpu}
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
export TORCH_EXTENSIONS_DIR=${TORCH_EXTENSIONS_DIR:-$PWD/.cache/torch_extensions}
export MAX_JOBS=${MAX_JOBS:-$(nproc)}
if [ -d shared/data ] && [ -z "${SPLAT_SHARED_DATA:-}" ]; then export SPLAT_SHARED_DATA=$PWD/shared/data; fi

"$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' \
    || { echo "gpu_check: $PY has no CUDA torch or sees no GPU" >&2; exit 2; }
[ -x "$VENV/bin/python" ] || "$PY" -m venv --system-site-packages "$VENV"
VPY=$VENV/bin/python
if [ -d "$WHEELS" ]; then
    # resolve against what is installed (torch, numpy, pillow) plus the wheels folder only;
    # names without pins, so a SLIM=1 wheels folder (other numba / llvmlite) works too
    "$VPY" -m pip install -q --no-index --find-links "$WHEELS" \
        $(sed -e 's/#.*//' -e 's/[=<>!~ ].*//' bench/gpu_requirements.txt | grep -v '^$')
else
    echo "gpu_check: no wheels folder $WHEELS (bench/gpu_wheels.sh makes it); using what is installed" >&2
fi
# our own package, editable, no dependencies fetched (falls back to PYTHONPATH without setuptools)
"$VPY" -m pip install -q --no-index --no-deps --no-build-isolation -e . 2>/dev/null \
    || export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
exec "$VPY" bench/gpu_check.py "$@"
