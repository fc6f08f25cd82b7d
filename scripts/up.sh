#!/usr/bin/env bash
# The main job kept running, from a fresh clone with no services running: set-up, then
# `atelier up` (embedded/up.py): Triton, S3, Redis, a private RabbitMQ node, a private PostgreSQL
# cluster (unless ATELIER_DATABASE_URL names one), the three worker pools, the sweeper and the
# HTTP API, until Ctrl-C. Prints the API's URL, a fresh key and curl lines to try it. Extra
# arguments go to `atelier up` (--port PORT, --state-dir DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
VENV=${ATELIER_VENV:-.venv}
exec "$VENV/bin/atelier" up "$@"
