#!/usr/bin/env bash
# The whole test suite from a fresh clone: set-up, services, lint, types, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/services.sh
VENV=${ATELIER_VENV:-.venv}
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
"$VENV/bin/mypy"
"$VENV/bin/lint-imports"
"$VENV/bin/pytest" -q -p no:cacheprovider "$@"
