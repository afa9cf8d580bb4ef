#!/usr/bin/env bash
# Time minicloud's cold and warm `up`, `up` on a running cloud, and `down`.
#
# Uses a separate state directory, database prefix and RabbitMQ vhost, so it
# never touches the default mini-cloud's data; drops them first to be cold
# (and pip runs without its cache, as on a fresh machine). The default
# mini-cloud must be down (same ports).
#
#   tests/minicloud/time_up.sh            # prints one line per step
set -euo pipefail
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MC="$REPO_DIR/devstack/minicloud"
export MINICLOUD_HOME=${TIME_HOME:-/var/tmp/minicloud-timing}
export MINICLOUD_DB_PREFIX=mctime_ MINICLOUD_RABBIT_VHOST=mctime PIP_NO_CACHE_DIR=1
OUT=${TIME_LOGS:-/tmp/minicloud-timing}
mkdir -p "$OUT"

"$MC" down >/dev/null 2>&1 || true
rm -rf "$MINICLOUD_HOME"
for db in keystone placement glance nova_api nova nova_cell0; do
    mysql -uroot -e "DROP DATABASE IF EXISTS \`mctime_$db\`"
done
rabbitmqctl -q delete_vhost mctime >/dev/null 2>&1 || true

step() {
    local name=$1 start end rc=0; shift
    start=$(date +%s.%N)
    "$@" >"$OUT/$name.log" 2>&1 || rc=$?
    end=$(date +%s.%N)
    awk -v n="$name" -v rc="$rc" -v s="$start" -v e="$end" 'BEGIN { printf "%-10s rc=%d %6.1f s\n", n, rc, e - s }'
    ((rc == 0)) || FAILED=1
}
FAILED=0
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
step cold-up "$MC" up --stock-compute
step up-again "$MC" up --stock-compute
step down "$MC" down
step warm-up "$MC" up --stock-compute
step down2 "$MC" down
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "logs: $OUT"
exit "$FAILED"
