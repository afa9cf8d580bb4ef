#!/usr/bin/env bash
# minicloud's "RabbitMQ and MariaDB are not running" path, on a machine where
# they do run: inside new network and mount namespaces (`unshare -mn`), with
# tmpfs over their data, socket and log directories, nothing answers on 5672
# or 3306, so `up` must start both itself (as plain processes), initialise
# MariaDB's data directory, then the whole cloud; `down` must stop them
# again. The machine's own brokers and databases are never touched.
#
#   tests/minicloud/selfstart_in_netns.sh      (root; about 2-4 minutes)
set -euo pipefail
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [[ ${1:-} != --inside ]]; then
    exec unshare --mount --net --propagation private "$0" --inside
fi

ip link set lo up
for d in /var/lib/mysql /run/mysqld /var/lib/rabbitmq /var/log/rabbitmq /var/log/mysql; do
    mkdir -p "$d"
    mount -t tmpfs tmpfs "$d"
done
chown mysql:mysql /var/lib/mysql /run/mysqld /var/log/mysql
chown rabbitmq:rabbitmq /var/lib/rabbitmq /var/log/rabbitmq

export MINICLOUD_HOME=/var/tmp/minicloud-netns-test
export MINICLOUD_VENV=${MINICLOUD_VENV:-/var/lib/novakvm-minicloud/venv}
rm -rf "$MINICLOUD_HOME"
MC="$REPO_DIR/devstack/minicloud"
rc=0
finish() {
    "$MC" down || rc=1
    # nothing may be left in this network namespace
    sleep 2
    if ss -ltn | grep -qE ':(4369|5672|3306|5000|8774|8778|9292|9696) '; then
        echo "FAIL: ports still open after down:" >&2
        ss -ltnp >&2
        rc=1
    fi
    rm -rf "$MINICLOUD_HOME"
    if ((rc == 0)); then echo "1 passed, 0 failed"; else echo "0 passed, 1 failed"; fi
    exit "$rc"
}
trap finish EXIT

"$MC" up --stock-compute | tee /tmp/minicloud-netns-up.log || { rc=1; exit 1; }
grep -q "starting RabbitMQ" /tmp/minicloud-netns-up.log || { echo "FAIL: RabbitMQ was not started by up" >&2; rc=1; }
grep -q "starting MariaDB" /tmp/minicloud-netns-up.log || { echo "FAIL: MariaDB was not started by up" >&2; rc=1; }
"$MC" status || { echo "FAIL: status" >&2; rc=1; }
