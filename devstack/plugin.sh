#!/bin/bash
# DevStack plugin: run novakvm instead of nova-compute.
#
# Phases (see docs/minicloud.md):
#   stack install      build novakvm (cargo build --release) unless NOVAKVM_BIN exists
#   stack post-config  write NOVAKVM_CONF from nova.conf the way DevStack
#                      writes nova-cpu.conf for n-cpu: cell transport_url,
#                      no [database]/[api_database] connection
#   stack extra        start `novakvm compute`, wait for its service record,
#                      map it to its cell (nova-manage cell_v2 discover_hosts)
#   unstack            stop it
#   clean              remove its state directory

# Save trace setting
_XTRACE_NOVAKVM=$(set +o | grep xtrace)
set -o xtrace

function install_novakvm {
    if [[ -x $NOVAKVM_BIN ]]; then
        echo "novakvm: using $NOVAKVM_BIN"
        return 0
    fi
    if ! command -v cargo >/dev/null; then
        die $LINENO "novakvm: $NOVAKVM_BIN is missing and there is no cargo to build it (install Rust with rustup, or set NOVAKVM_BIN)"
    fi
    (cd "$NOVAKVM_DIR" && cargo build --release --bin novakvm) ||
        die $LINENO "novakvm: cargo build --release failed"
}

function configure_novakvm {
    sudo install -d -o "$STACK_USER" "$NOVAKVM_STATE_PATH" "$(dirname "$NOVAKVM_CONF")"
    cp "$NOVA_CONF" "$NOVAKVM_CONF"
    # The compute gets no database credentials: everything goes through
    # nova-conductor (nova refuses direct DB access from computes).
    inidelete "$NOVAKVM_CONF" database connection
    inidelete "$NOVAKVM_CONF" api_database connection
    iniset_rpc_backend nova "$NOVAKVM_CONF" DEFAULT "nova_cell${NOVAKVM_CELL}"
    iniset "$NOVAKVM_CONF" DEFAULT compute_driver "$NOVAKVM_COMPUTE_DRIVER"
    iniset "$NOVAKVM_CONF" DEFAULT state_path "$NOVAKVM_STATE_PATH"
    iniset "$NOVAKVM_CONF" DEFAULT instances_path "$NOVAKVM_STATE_PATH/instances"
}

function start_novakvm {
    run_process novakvm "$NOVAKVM_BIN compute --nova-conf $NOVAKVM_CONF"
    # Map the new compute host to its cell, as DevStack does for n-cpu.
    local host _i
    host=$(iniget "$NOVAKVM_CONF" DEFAULT host)
    host=${host:-$(hostname)}
    for _i in $(seq 60); do
        if openstack --os-cloud devstack-admin compute service list \
            --service nova-compute --host "$host" -f value -c State 2>/dev/null | grep -q up; then
            break
        fi
        sleep 2
    done
    $NOVA_BIN_DIR/nova-manage --config-file "$NOVA_CONF" cell_v2 discover_hosts --verbose
}

function stop_novakvm {
    stop_process novakvm
}

function cleanup_novakvm {
    sudo rm -rf "$NOVAKVM_STATE_PATH"
    rm -f "$NOVAKVM_CONF"
}

if is_service_enabled novakvm; then
    if [[ "$1" == "stack" && "$2" == "install" ]]; then
        echo_summary "Installing novakvm"
        install_novakvm
    elif [[ "$1" == "stack" && "$2" == "post-config" ]]; then
        echo_summary "Configuring novakvm"
        configure_novakvm
    elif [[ "$1" == "stack" && "$2" == "extra" ]]; then
        echo_summary "Starting novakvm"
        start_novakvm
    fi
    if [[ "$1" == "unstack" ]]; then
        stop_novakvm
    fi
    if [[ "$1" == "clean" ]]; then
        cleanup_novakvm
    fi
fi

# Restore xtrace
$_XTRACE_NOVAKVM
