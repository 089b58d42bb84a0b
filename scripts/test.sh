#!/usr/bin/env bash
# README command 2 (and CI): set up the environment, lint, run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
source scripts/ros_env.sh
echo "== lint (ruff check, ruff format --check)"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== types (mypy, files in pyproject.toml)"
.venv/bin/mypy
echo "== tests (pytest)"
.venv/bin/python -m pytest "$@"
