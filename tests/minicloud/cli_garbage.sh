#!/usr/bin/env bash
# devstack/minicloud fed garbage: each bad invocation exits non-zero with a
# clear message and starts nothing. Uses a throw-away MINICLOUD_HOME.
set -uo pipefail
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MC="$REPO_DIR/devstack/minicloud"
export MINICLOUD_HOME
MINICLOUD_HOME=$(mktemp -d)
trap 'rm -rf "$MINICLOUD_HOME"' EXIT
pass=0 fail=0

expect_fail() { # expect_fail WANTED-TEXT CMD...
    local want=$1 out rc; shift
    out=$("$@" 2>&1); rc=$?
    if ((rc != 0)) && grep -qF -- "$want" <<<"$out"; then
        pass=$((pass + 1))
    else
        echo "FAIL: $* -> rc=$rc, output: $out" >&2
        fail=$((fail + 1))
    fi
}

expect_fail "unknown command" "$MC" bogus
expect_fail "unknown command" "$MC" 'up; rm -rf /'
expect_fail "unknown option for up: --bogus" "$MC" up --bogus
expect_fail "unknown option for up: " "$MC" up ''
expect_fail "MINICLOUD_COMPUTE must be novakvm or stock" env MINICLOUD_COMPUTE=libvirt "$MC" up
expect_fail "not running" "$MC" status
# nothing was started in the throw-away home
if compgen -G "$MINICLOUD_HOME/run/*.pid" >/dev/null; then
    echo "FAIL: pid files appeared" >&2; fail=$((fail + 1))
else
    pass=$((pass + 1))
fi
# `down` with nothing running is fine
if "$MC" down >/dev/null 2>&1; then pass=$((pass + 1)); else echo "FAIL: down" >&2; fail=$((fail + 1)); fi

echo "$pass passed, $fail failed"
((fail == 0))
