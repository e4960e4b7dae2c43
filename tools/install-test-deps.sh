#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine: a virtual environment
# in .venv with the pinned Python packages.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q -r requirements-dev.txt
