//! Every method nova 34's `ComputeAPI` (nova/compute/rpcapi.py, RPC API
//! 6.5) can send to a compute host, and whether it is a call (the caller
//! waits for an answer) or a cast.

/// How a method is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The caller waits for a reply.
    Call,
    /// Fire and forget.
    Cast,
    /// Either, chosen by the caller (`confirm_resize`, `stop_instance`).
    Either,
}

/// `(method, kind)` for all 73 methods of nova 34.0.0's ComputeAPI.
pub const METHODS: &[(&str, Kind)] = &[
    ("add_fixed_ip_to_instance", Kind::Cast),
    ("allow_share", Kind::Cast),
    ("attach_interface", Kind::Call),
    ("attach_volume", Kind::Cast),
    ("backup_instance", Kind::Cast),
    ("build_and_run_instance", Kind::Cast),
    ("cache_images", Kind::Call),
    ("check_can_live_migrate_destination", Kind::Call),
    ("check_can_live_migrate_source", Kind::Call),
    ("check_instance_shared_storage", Kind::Call),
    ("confirm_resize", Kind::Either),
    ("confirm_snapshot_based_resize_at_source", Kind::Call),
    ("deny_share", Kind::Cast),
    ("detach_interface", Kind::Cast),
    ("detach_volume", Kind::Cast),
    ("drop_move_claim_at_destination", Kind::Call),
    ("external_instance_event", Kind::Cast),
    ("finish_resize", Kind::Cast),
    ("finish_revert_resize", Kind::Cast),
    ("finish_revert_snapshot_based_resize_at_source", Kind::Call),
    ("finish_snapshot_based_resize_at_dest", Kind::Call),
    ("get_console_output", Kind::Call),
    ("get_diagnostics", Kind::Call),
    ("get_host_uptime", Kind::Call),
    ("get_instance_diagnostics", Kind::Call),
    ("get_mks_console", Kind::Call),
    ("get_serial_console", Kind::Call),
    ("get_spice_console", Kind::Call),
    ("get_vnc_console", Kind::Call),
    ("host_maintenance_mode", Kind::Call),
    ("host_power_action", Kind::Call),
    ("inject_network_info", Kind::Cast),
    ("live_migration", Kind::Cast),
    ("live_migration_abort", Kind::Cast),
    ("live_migration_force_complete", Kind::Cast),
    ("pause_instance", Kind::Cast),
    ("post_live_migration_at_destination", Kind::Call),
    ("pre_live_migration", Kind::Call),
    ("prep_resize", Kind::Cast),
    ("prep_snapshot_based_resize_at_dest", Kind::Call),
    ("prep_snapshot_based_resize_at_source", Kind::Call),
    ("quiesce_instance", Kind::Call),
    ("reboot_instance", Kind::Cast),
    ("rebuild_instance", Kind::Cast),
    ("remove_fixed_ip_from_instance", Kind::Cast),
    ("remove_volume_connection", Kind::Call),
    ("rescue_instance", Kind::Cast),
    ("reserve_block_device_name", Kind::Call),
    ("resize_instance", Kind::Cast),
    ("restore_instance", Kind::Cast),
    ("resume_instance", Kind::Cast),
    ("revert_resize", Kind::Cast),
    ("revert_snapshot_based_resize_at_dest", Kind::Call),
    ("rollback_live_migration_at_destination", Kind::Cast),
    ("set_admin_password", Kind::Call),
    ("set_host_enabled", Kind::Call),
    ("shelve_instance", Kind::Cast),
    ("shelve_offload_instance", Kind::Cast),
    ("snapshot_instance", Kind::Cast),
    ("soft_delete_instance", Kind::Cast),
    ("start_instance", Kind::Cast),
    ("stop_instance", Kind::Either),
    ("suspend_instance", Kind::Cast),
    ("swap_volume", Kind::Cast),
    ("terminate_instance", Kind::Cast),
    ("trigger_crash_dump", Kind::Cast),
    ("unpause_instance", Kind::Cast),
    ("unquiesce_instance", Kind::Cast),
    ("unrescue_instance", Kind::Cast),
    ("unshelve_instance", Kind::Cast),
    ("validate_console_port", Kind::Call),
    ("volume_snapshot_create", Kind::Cast),
    ("volume_snapshot_delete", Kind::Cast),
];

/// The kind of `method`, or None when nova's ComputeAPI has no such method.
pub fn kind(method: &str) -> Option<Kind> {
    METHODS
        .binary_search_by(|(m, _)| m.cmp(&method))
        .ok()
        .map(|i| METHODS[i].1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_and_unique() {
        assert!(METHODS.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(kind("build_and_run_instance"), Some(Kind::Cast));
        assert_eq!(kind("nope"), None);
    }
}
