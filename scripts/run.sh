#!/usr/bin/env bash
# The main job on the embedded default, from a fresh clone with no services running:
# set-up, then Triton (triton_models/), S3, Redis, a broker (RabbitMQ if ATELIER_BROKER_URL is
# set, else kombu's filesystem://), the private PostgreSQL cluster `atelier up` uses (the API's key
# store, unless ATELIER_DATABASE_URL names one), three Celery workers, the HTTP API and a callback
# receiver, all started and stopped by embedded/demo.py, which submits and follows every job over
# HTTP. Writes out/demo/contact_sheet.png. Extra arguments go to the demo (--out DIR, --timeout SECONDS).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
VENV=${ATELIER_VENV:-.venv}
exec "$VENV/bin/python" -m embedded.demo "$@"
