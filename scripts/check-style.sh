#!/usr/bin/env bash
# The style checks the project declares in pyproject.toml: ruff (lint), ruff format, mypy.
# Run by .ci/run before the tests and by the pre-commit hook; needs `bash scripts/setup.sh` first.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check --quiet .
.venv/bin/ruff format --check --quiet .
.venv/bin/mypy atecc cryptoki fleet broker
echo "style: ruff, ruff format and mypy are clean"
