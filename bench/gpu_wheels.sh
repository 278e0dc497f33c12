#!/usr/bin/env bash
# Download the wheels bench/gpu_check.sh installs on a GPU machine that has no network.
#
#   bench/gpu_wheels.sh                 # into .whl/ for CPython 3.12, manylinux x86_64
#   PYVER=3.11 bench/gpu_wheels.sh      # for another Python (match the GPU machine's)
#   WHEELS=/tmp/w bench/gpu_wheels.sh   # somewhere else
#   SLIM=1 bench/gpu_wheels.sh          # numba 0.61.2 / llvmlite 0.44.0 instead of the tested
#                                       # 0.68.1 / 0.50.0: 61 MB in all instead of 78 MB, for a
#                                       # runner that carries at most 64 MiB (needs numpy <= 2.2 there)
#
# Keep .whl/ out of git without touching .gitignore:   echo /.whl/ >> .git/info/exclude
# (in a worktree: echo /.whl/ >> "$(git rev-parse --git-common-dir)/info/exclude").
# It then travels to the GPU machine only when named (e.g. the device runner's carry: [".whl"]).
# The list, with versions and why each is there: bench/gpu_requirements.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
PYVER=${PYVER:-3.12}
WHEELS=${WHEELS:-.whl}
mkdir -p "$WHEELS"
REQS=$(mktemp)
trap 'rm -f "$REQS"' EXIT
if [ "${SLIM:-0}" = 1 ]; then
    sed -e 's/^numba==.*/numba==0.61.2/' -e 's/^llvmlite==.*/llvmlite==0.44.0/' bench/gpu_requirements.txt > "$REQS"
else
    cp bench/gpu_requirements.txt "$REQS"
fi
"$PY" -m pip download --no-deps --only-binary=:all: --python-version "$PYVER" \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
    --implementation cp -d "$WHEELS" -r "$REQS"
ls -l "$WHEELS"
du -sh "$WHEELS"
