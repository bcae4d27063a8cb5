#!/usr/bin/env bash
# Installs what the project needs on a fresh machine: uv, then the locked Python packages.
set -euo pipefail
if ! python3 -m uv --version >/dev/null 2>&1; then
  echo "Installing uv from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check uv
fi
python3 -m uv sync --frozen --quiet
