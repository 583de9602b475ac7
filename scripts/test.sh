#!/usr/bin/env bash
# Set up, then run every check: ruff, mypy, import-linter, and the whole pytest suite (slow tests included).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k lake -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

echo "== ruff"
.venv/bin/ruff check .
echo "== mypy"
.venv/bin/mypy stedi stedi_app gateway cloud_pipeline simulator
echo "== import-linter (the layers in pyproject.toml)"
.venv/bin/lint-imports --no-cache
echo "== pytest"
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
  echo "pytest collected no tests: that is a failure here, the suite must never be empty" >&2
  exit 1
fi
exit "$rc"
