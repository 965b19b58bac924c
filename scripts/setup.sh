#!/usr/bin/env bash
# Set up a virtual environment in .venv with causalmtl and its test tools.
# Idempotent: a second run only checks that everything is installed.
# Torch is pinned here (not in pyproject.toml) to the CPU build available on this machine;
# set CAUSALMTL_TORCH to install another torch spec (e.g. a CUDA build).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install --quiet "${CAUSALMTL_TORCH:-torch==2.13.0}"
.venv/bin/python -m pip install --quiet -e ".[dev]"
