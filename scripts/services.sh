#!/usr/bin/env bash
# Starts the local services the integration tests use, if they are not already up:
# RabbitMQ (5672), Redis (6379), PostgreSQL (5432: Debian's cluster, trust auth; the API's tenants
# and keys). Triton and the S3 server are started by the tests themselves.
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! port_open 6379; then
  echo "services: starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi
if ! port_open 5672; then
  echo "services: starting RabbitMQ"
  rabbitmq-server -detached
  for _ in $(seq 1 120); do rabbitmqctl -q await_startup >/dev/null 2>&1 && break; sleep 1; done
fi
if ! port_open 5432; then
  echo "services: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main start
fi
for port in 6379 5672 5432; do
  for _ in $(seq 1 60); do port_open "$port" && break; sleep 0.5; done
  port_open "$port" || { echo "services: nothing answers on 127.0.0.1:$port" >&2; exit 1; }
done
