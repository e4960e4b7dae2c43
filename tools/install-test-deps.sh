#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine: a virtual environment
# in .venv with the pinned Python packages.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q -r requirements-dev.txt
# Browser tests (tests/test_web.py): Debian's chromium, driven by Playwright for Python,
# and the page's runtime, onnxruntime-web, at the version locked in web/package-lock.json.
if [ ! -x /usr/bin/chromium ]; then
    apt-get update && apt-get install -y chromium
fi
npm ci --prefix web --no-audit --no-fund
