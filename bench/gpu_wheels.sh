#!/usr/bin/env bash
# Download the wheels bench/gpu_check.sh installs on a GPU machine that has no network.
#
#   bench/gpu_wheels.sh                 # into .whl/ for CPython 3.12, manylinux x86_64
#   PYVER=3.11 bench/gpu_wheels.sh      # for another Python (match the GPU machine's)
#   WHEELS=/tmp/w bench/gpu_wheels.sh   # somewhere else
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
"$PY" -m pip download --no-deps --only-binary=:all: --python-version "$PYVER" \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
    --implementation cp -d "$WHEELS" -r bench/gpu_requirements.txt
ls -l "$WHEELS"
du -sh "$WHEELS"
