#!/usr/bin/env bash
# Create (or refresh) .venv with the pinned dependencies and min2real in editable mode.
# Re-running when nothing changed takes about a second: a stamp holds the hash of the inputs.
# Then scripts/setup_upstream.sh installs the upstream sources of ../shared/third_party (if there).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
VENV=${VENV:-.venv}
stamp_inputs=(requirements/lock.txt setup.py setup.cfg package.xml)
stamp_value=$(cat "${stamp_inputs[@]}" | sha256sum | cut -d' ' -f1)
stamp_file="$VENV/.min2real-stamp"

if [[ -f "$stamp_file" && "$(cat "$stamp_file")" == "$stamp_value" && -x "$VENV/bin/python" ]]; then
  exec bash scripts/setup_upstream.sh  # its own stamp: about a second when nothing changed
fi

if ! command -v "$PYTHON" >/dev/null; then
  echo "setup_env: $PYTHON not found; min2real's environment needs Python 3.11 (set PYTHON=... to override)" >&2
  exit 1
fi
echo "setup_env: creating $VENV with $($PYTHON --version) and the pinned dependencies (first run: a few minutes)"
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
# pip's index warnings about local mirrors are noise; errors still fail the script.
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements/lock.txt 2> >(grep -v "^WARNING: Location" >&2)
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e . 2> >(grep -v "^WARNING: Location" >&2)
echo "$stamp_value" > "$stamp_file"
echo "setup_env: ready ($VENV)"
# The upstream tools of ../shared/third_party for the tests against the real thing (when present).
bash scripts/setup_upstream.sh
