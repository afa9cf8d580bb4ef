#!/usr/bin/env bash
# Benchmark: novakvm compute vs stock nova-compute 34.0.0 joining the same
# running mini-cloud, same run, both with the fake virt driver
# (fake.FakeDriverWithoutFakeNodes), each with a fresh host name and state_path.
#
#   benches/agent_startup.sh [RUNS]        (default 3 runs of each, alternating)
#
# Measured per start, from process spawn:
#   service  - the `services` row for the host exists (Service.create done:
#              nova counts a service up from its record's timestamps)
#   node     - the `compute_nodes` row exists (ComputeNode.create done)
#   rss      - resident set size (process + children) 20 s after spawn
# Needs: a running mini-cloud (`devstack/minicloud up`; MINICLOUD_* honoured),
# the release binary (NOVAKVM_BIN, default target/release/novakvm), mysql client.
set -euo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUNS="${1:-3}"
MINICLOUD_HOME="${MINICLOUD_HOME:-/var/lib/novakvm-minicloud}"
VENV="${MINICLOUD_VENV:-$MINICLOUD_HOME/venv}"
NOVAKVM_BIN="${NOVAKVM_BIN:-$REPO_DIR/target/release/novakvm}"
DB="${MINICLOUD_DB_PREFIX:-}nova"
DB_USER="${MINICLOUD_DB_USER:-minicloud}"
DB_PASSWORD="${MINICLOUD_DB_PASSWORD:-minicloud}"
DB_PORT="${MINICLOUD_DB_PORT:-3306}"
CONF="$MINICLOUD_HOME/etc/nova/nova-cpu.conf"
WORK=$(mktemp -d /tmp/agent-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

[[ -x $NOVAKVM_BIN ]] || { echo "no $NOVAKVM_BIN (cargo build --release)" >&2; exit 1; }
[[ -f $CONF ]] || { echo "no $CONF: is the mini-cloud up?" >&2; exit 1; }

sql() { mysql -h127.0.0.1 -P"$DB_PORT" -u"$DB_USER" -p"$DB_PASSWORD" -N -B "$DB" -e "$1" 2>/dev/null; }
now_ms() { date +%s%3N; }

rss_kib() {  # RSS of a process and its descendants, KiB
    local pid=$1 total=0 p
    for p in $pid $(pgrep -P "$pid" || true); do
        total=$((total + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
    done
    echo "$total"
}

# one KIND N: start one compute, print "KIND service_ms node_ms rss_kib"
one() {
    local kind=$1 n=$2 host dir conf pid t0 ts="" tn="" rss
    host="bench-$kind-$$-$n"
    dir="$WORK/$host"
    mkdir -p "$dir/state"
    conf="$dir/nova-cpu.conf"
    sed -e "s/^host = .*/host = $host/" \
        -e "s#^state_path = .*#state_path = $dir/state#" \
        -e "s#^lock_path = .*#lock_path = $dir/state/locks#" \
        -e "s/^compute_driver = .*/compute_driver = fake.FakeDriverWithoutFakeNodes/" \
        "$CONF" >"$conf"
    t0=$(now_ms)
    if [[ $kind == novakvm ]]; then
        NO_COLOR=1 "$NOVAKVM_BIN" compute --nova-conf "$conf" >"$dir/log" 2>&1 &
    else
        "$VENV/bin/nova-compute" --config-file "$conf" >"$dir/log" 2>&1 &
    fi
    pid=$!
    for _ in $(seq 1200); do
        [[ -z $ts && $(sql "select count(*) from services where host='$host' and deleted=0") -gt 0 ]] && ts=$(($(now_ms) - t0))
        [[ -z $tn && $(sql "select count(*) from compute_nodes where host='$host' and deleted=0") -gt 0 ]] && tn=$(($(now_ms) - t0))
        [[ -n $ts && -n $tn ]] && break
        kill -0 "$pid" 2>/dev/null || { tail -20 "$dir/log" >&2; echo "$kind exited" >&2; return 1; }
        sleep 0.05
    done
    while (($(now_ms) - t0 < 20000)); do sleep 0.5; done
    rss=$(rss_kib "$pid")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    # Leave no records behind (the API deletes service, node and provider).
    ( source "$MINICLOUD_HOME/openrc"
      id=$(openstack compute service list --service nova-compute -f value -c ID -c Host | awk -v h="$host" '$2 == h {print $1}')
      [[ -z $id ]] || openstack compute service delete "$id" >/dev/null 2>&1 || true )
    echo "$kind ${ts:-NA} ${tn:-NA} $rss"
}

results="$WORK/results"
for n in $(seq "$RUNS"); do
    one novakvm "$n" | tee -a "$results"
    one stock "$n" | tee -a "$results"
done

awk '
{ s[$1] += $2; nd[$1] += $3; r[$1] += $4; c[$1]++ }
END {
    for (k in c) printf "%-8s service %6.0f ms  node %6.0f ms  rss %7.1f MiB  (mean of %d)\n",
        k, s[k]/c[k], nd[k]/c[k], r[k]/c[k]/1024, c[k]
    if (c["novakvm"] && c["stock"]) {
        printf "ratio stock/novakvm: service %.1fx  node %.1fx  rss %.1fx\n",
            (s["stock"]/c["stock"]) / (s["novakvm"]/c["novakvm"]),
            (nd["stock"]/c["stock"]) / (nd["novakvm"]/c["novakvm"]),
            (r["stock"]/c["stock"]) / (r["novakvm"]/c["novakvm"])
    }
}' "$results"
