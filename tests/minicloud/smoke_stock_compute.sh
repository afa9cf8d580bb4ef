#!/usr/bin/env bash
# Smoke test of devstack/minicloud with the stock nova-compute (fake driver).
#
# Brings the mini-cloud up with --stock-compute, then through the real
# `openstack` CLI and Keystone: compute service up, fake hypervisor listed
# (after discover_hosts), image upload, flavor create, server create
# --nic none -> ACTIVE, server show, server delete -> gone; checks the Neutron
# stand-in was asked; then `down` and checks nothing minicloud started is
# left running. Exits non-zero on the first failure.
#
#   tests/minicloud/smoke_stock_compute.sh
#   MINICLOUD_KEEP=1 tests/minicloud/smoke_stock_compute.sh   # leave it up
set -euo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MC="$REPO_DIR/devstack/minicloud"
MINICLOUD_HOME="${MINICLOUD_HOME:-/var/lib/novakvm-minicloud}"
export MINICLOUD_HOME
TIMEOUT="${SMOKE_TIMEOUT:-120}"
NAME="smoke-$$"

say() { printf '[smoke %(%H:%M:%S)T] %s\n' -1 "$*"; }
fail() { printf '[smoke] FAIL: %s\n' "$*" >&2; exit 1; }

finish() {
    local rc=$?
    if [[ ${MINICLOUD_KEEP:-0} != 1 ]]; then
        say "bringing the mini-cloud down"
        "$MC" down || rc=1
        # Nothing minicloud started may be left: no pid file and no process
        # listening on its API ports.
        local left
        left=$(ls "$MINICLOUD_HOME"/run/*.pid 2>/dev/null || true)
        [[ -z $left ]] || { echo "[smoke] FAIL: pid files left: $left" >&2; rc=1; }
        for port in 5000 8774 8778 9292 9696; do
            if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
                echo "[smoke] FAIL: port $port still answers after down" >&2
                rc=1
            fi
        done
    fi
    if ((rc == 0)); then
        echo "1 passed, 0 failed"
    else
        echo "0 passed, 1 failed"
    fi
    exit "$rc"
}
trap finish EXIT

# poll SECONDS CMD...: run CMD until it succeeds.
poll() {
    local secs=$1 i; shift
    for ((i = 0; i < secs; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 1
    done
    return 1
}

say "minicloud up --stock-compute"
"$MC" up --stock-compute

# shellcheck disable=SC1091
source "$MINICLOUD_HOME/openrc"
VENV_BIN=$(dirname "$(command -v openstack)")
HOST=$(sed -n 's/^host = //p' "$MINICLOUD_HOME/etc/nova/nova-cpu.conf" | head -n1)
[[ -n $HOST ]] || fail "no host in nova-cpu.conf"

say "compute service list shows nova-compute on $HOST up"
compute_up() {
    openstack compute service list --service nova-compute -f value -c Host -c State |
        grep -qx "$HOST up"
}
poll "$TIMEOUT" compute_up || fail "nova-compute on $HOST is not up: $(openstack compute service list 2>&1)"

say "discover_hosts, then hypervisor list shows $HOST"
"$VENV_BIN/nova-manage" --config-file "$MINICLOUD_HOME/etc/nova/nova.conf" cell_v2 discover_hosts >/dev/null
hypervisor_listed() {
    openstack hypervisor list -f value -c "Hypervisor Hostname" -c "Hypervisor Type" -c State |
        grep -qx "$HOST fake up"
}
poll 30 hypervisor_listed || fail "hypervisor $HOST not listed: $(openstack hypervisor list 2>&1)"

say "upload a tiny raw image"
IMG_FILE=$(mktemp)
head -c 1048576 /dev/zero >"$IMG_FILE"
IMAGE=$(openstack image create --disk-format raw --container-format bare \
    --file "$IMG_FILE" "$NAME-image" -f value -c id)
rm -f "$IMG_FILE"
[[ $(openstack image show "$IMAGE" -f value -c status) == active ]] || fail "image $IMAGE not active"

say "create a flavor"
openstack flavor create --ram 64 --disk 1 --vcpus 1 "$NAME-flavor" >/dev/null

say "server create --nic none"
SERVER=$(openstack server create --nic none --image "$IMAGE" --flavor "$NAME-flavor" \
    "$NAME" -f value -c id)
status=""
for ((i = 0; i < TIMEOUT; i++)); do
    status=$(openstack server show "$SERVER" -f value -c status)
    [[ $status == ACTIVE || $status == ERROR ]] && break
    sleep 1
done
[[ $status == ACTIVE ]] || fail "server $SERVER is $status: $(openstack server show "$SERVER" -f json -c fault 2>&1)"
say "server $SERVER ACTIVE on $(openstack server show "$SERVER" -f value -c OS-EXT-SRV-ATTR:host)"

say "server delete"
openstack server delete "$SERVER"
gone() { ! openstack server show "$SERVER" >/dev/null 2>&1; }
poll "$TIMEOUT" gone || fail "server $SERVER still there: $(openstack server show "$SERVER" -f value -c status 2>&1)"

say "the Neutron stand-in was asked for the server's ports"
grep -q "device_id=$SERVER" "$MINICLOUD_HOME/log/neutron-standin-requests.jsonl" ||
    fail "no Neutron call for $SERVER in the stand-in's log"

say "clean up image and flavor"
openstack image delete "$IMAGE"
openstack flavor delete "$NAME-flavor"
say "all checks passed"
