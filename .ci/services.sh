#!/usr/bin/env bash
# Start PostgreSQL and RabbitMQ where they have stopped (this machine's own commands).
set -u
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
fi
if ! (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then
  echo "starting RabbitMQ"
  rabbitmq-server -detached || true
  for _ in $(seq 1 60); do (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null && break; sleep 1; done
fi
# the management API: per-task broker users (gridhpo admin broker, protocol/brokeradmin.py);
# enabling an enabled plugin changes nothing, and enabling does not stop the node
if ! (exec 3<>/dev/tcp/127.0.0.1/15672) 2>/dev/null; then
  echo "enabling RabbitMQ's management plugin"
  rabbitmq-plugins enable rabbitmq_management >/dev/null || true
  for _ in $(seq 1 30); do (exec 3<>/dev/tcp/127.0.0.1/15672) 2>/dev/null && break; sleep 1; done
fi
exit 0
