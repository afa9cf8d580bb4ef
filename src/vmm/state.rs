//! VM lifecycle: the state machine and the reasons a VM ends (with process exit codes).

use serde::Serialize;

/// Lifecycle state of the VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VmState {
    /// Built, vCPUs not started yet.
    Created,
    /// vCPUs running.
    Running,
    /// vCPUs parked by a `pause` request.
    Paused,
    /// A graceful `shutdown` is waiting for the guest to power off.
    ShuttingDown,
    /// The guest reset and is being rebuilt (`on_reset = restart`).
    Resetting,
    /// The VM has ended; the process is about to exit.
    Stopped,
}

impl VmState {
    /// Whether `self -> to` is allowed.
    pub fn valid_transition(self, to: VmState) -> bool {
        use VmState::*;
        matches!(
            (self, to),
            (Created, Running)
                | (Created, Stopped)
                | (Running, Paused)
                | (Running, ShuttingDown)
                | (Running, Resetting)
                | (Running, Stopped)
                | (Paused, Running)
                | (Paused, ShuttingDown)
                | (Paused, Stopped)
                | (ShuttingDown, Stopped)
                | (Resetting, Running)
                | (Resetting, Stopped)
        )
    }

    /// All states (for tests and docs).
    pub const ALL: [VmState; 6] = [
        VmState::Created,
        VmState::Running,
        VmState::Paused,
        VmState::ShuttingDown,
        VmState::Resetting,
        VmState::Stopped,
    ];
}

/// Why a VM run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitReason {
    /// The guest powered off (ACPI PM1a SLP_EN on port 0x604).
    PowerOff,
    /// The guest reset (i8042 0xFE, or a KVM system-event reset).
    Reset,
    /// The guest crashed: triple fault (KVM shutdown exit), KVM internal error, failed entry.
    Crash(String),
    /// Forced off by the control API (`power_off`, or `shutdown` timing out).
    ForcedOff,
    /// The VMM itself failed while running.
    VmmError(String),
}

/// Process exit codes of `novakvm vmm` (documented in docs/arch-vmm.md).
pub mod exit_code {
    /// The guest powered off; in the direct form also a guest reset.
    pub const POWER_OFF: u8 = 0;
    /// Bad arguments or spec (nothing was created).
    pub const BAD_SPEC: u8 = 2;
    /// Building the VM failed (KVM, memory/hugepages, kernel loading, socket).
    pub const SETUP_FAILED: u8 = 3;
    /// The guest reset and `on_reset` is `exit` (spec form).
    pub const GUEST_RESET: u8 = 4;
    /// The guest crashed (triple fault, KVM internal error, entry failure).
    pub const GUEST_CRASH: u8 = 5;
    /// Forced power-off from the control API, or graceful shutdown timed out.
    pub const FORCED_OFF: u8 = 6;
    /// The VMM failed while the VM was running.
    pub const VMM_ERROR: u8 = 7;
}

impl ExitReason {
    /// Process exit code for this reason; `direct` is the flag form, where a reset exits 0.
    pub fn exit_code(&self, direct: bool) -> u8 {
        match self {
            ExitReason::PowerOff => exit_code::POWER_OFF,
            ExitReason::Reset if direct => exit_code::POWER_OFF,
            ExitReason::Reset => exit_code::GUEST_RESET,
            ExitReason::Crash(_) => exit_code::GUEST_CRASH,
            ExitReason::ForcedOff => exit_code::FORCED_OFF,
            ExitReason::VmmError(_) => exit_code::VMM_ERROR,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use VmState::*;

    #[test]
    fn transition_table() {
        let allowed = [
            (Created, Running),
            (Created, Stopped),
            (Running, Paused),
            (Running, ShuttingDown),
            (Running, Resetting),
            (Running, Stopped),
            (Paused, Running),
            (Paused, ShuttingDown),
            (Paused, Stopped),
            (ShuttingDown, Stopped),
            (Resetting, Running),
            (Resetting, Stopped),
        ];
        for from in VmState::ALL {
            for to in VmState::ALL {
                assert_eq!(
                    from.valid_transition(to),
                    allowed.contains(&(from, to)),
                    "{from:?} -> {to:?}"
                );
            }
        }
        // Stopped is terminal.
        assert!(VmState::ALL.iter().all(|&s| !Stopped.valid_transition(s)));
    }

    #[test]
    fn exit_codes_are_distinct() {
        let reasons = [
            ExitReason::PowerOff,
            ExitReason::Reset,
            ExitReason::Crash(String::new()),
            ExitReason::ForcedOff,
            ExitReason::VmmError(String::new()),
        ];
        let codes: std::collections::BTreeSet<u8> =
            reasons.iter().map(|r| r.exit_code(false)).collect();
        assert_eq!(codes.len(), reasons.len());
        assert_eq!(ExitReason::Reset.exit_code(true), 0);
        assert_eq!(ExitReason::PowerOff.exit_code(false), 0);
        assert!(!codes.contains(&exit_code::BAD_SPEC));
        assert!(!codes.contains(&exit_code::SETUP_FAILED));
    }
}
