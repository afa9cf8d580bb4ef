//! Nova's instance states (`vm_state`, `task_state`, `power_state`) as enums,
//! with the wire strings nova 34 uses (nova/objects/fields.py) and an
//! explicit table of the transitions the compute manager performs.

use serde::{Deserialize, Serialize};

/// Errors about instance states.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("unknown {kind} {value:?}")]
    Unknown { kind: &'static str, value: String },
    #[error("{op:?} is not allowed from vm_state {from} (allowed from: {allowed})")]
    NotAllowed {
        op: Operation,
        from: VmState,
        allowed: String,
    },
    #[error("instance is busy: task_state {0} is set")]
    Busy(TaskState),
}

macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident, $kind:literal, { $($variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $wire)] $variant,)+
        }

        impl $name {
            /// Every value, in nova's order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The string nova puts on the wire.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire,)+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = StateError;
            fn from_str(s: &str) -> Result<Self, StateError> {
                match s {
                    $($wire => Ok($name::$variant),)+
                    other => Err(StateError::Unknown { kind: $kind, value: other.to_string() }),
                }
            }
        }
    };
}

wire_enum!(
    /// `Instance.vm_state`.
    VmState, "vm_state", {
    Active = "active",
    Building = "building",
    Paused = "paused",
    Suspended = "suspended",
    Stopped = "stopped",
    Rescued = "rescued",
    Resized = "resized",
    SoftDeleted = "soft-delete",
    Deleted = "deleted",
    Error = "error",
    Shelved = "shelved",
    ShelvedOffloaded = "shelved_offloaded",
});

wire_enum!(
    /// `Instance.task_state` (None on the wire is "no task").
    TaskState, "task_state", {
    Scheduling = "scheduling",
    BlockDeviceMapping = "block_device_mapping",
    Networking = "networking",
    Spawning = "spawning",
    ImageSnapshot = "image_snapshot",
    ImageSnapshotPending = "image_snapshot_pending",
    ImagePendingUpload = "image_pending_upload",
    ImageUploading = "image_uploading",
    ImageBackup = "image_backup",
    UpdatingPassword = "updating_password",
    ResizePrep = "resize_prep",
    ResizeMigrating = "resize_migrating",
    ResizeMigrated = "resize_migrated",
    ResizeFinish = "resize_finish",
    ResizeReverting = "resize_reverting",
    ResizeConfirming = "resize_confirming",
    Rebooting = "rebooting",
    RebootPending = "reboot_pending",
    RebootStarted = "reboot_started",
    RebootingHard = "rebooting_hard",
    RebootPendingHard = "reboot_pending_hard",
    RebootStartedHard = "reboot_started_hard",
    Pausing = "pausing",
    Unpausing = "unpausing",
    Suspending = "suspending",
    Resuming = "resuming",
    PoweringOff = "powering-off",
    PoweringOn = "powering-on",
    Rescuing = "rescuing",
    Unrescuing = "unrescuing",
    Rebuilding = "rebuilding",
    RebuildBlockDeviceMapping = "rebuild_block_device_mapping",
    RebuildSpawning = "rebuild_spawning",
    Migrating = "migrating",
    Deleting = "deleting",
    SoftDeleting = "soft-deleting",
    Restoring = "restoring",
    Shelving = "shelving",
    ShelvingImagePendingUpload = "shelving_image_pending_upload",
    ShelvingImageUploading = "shelving_image_uploading",
    ShelvingOffloading = "shelving_offloading",
    Unshelving = "unshelving",
});

pub use crate::virt::power_state::PowerState;

/// What the compute manager does to an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Build,
    Stop,
    Start,
    SoftReboot,
    HardReboot,
    Pause,
    Unpause,
    Suspend,
    Resume,
    Delete,
}

/// One row of the transition table: from which vm_states an operation may
/// start, the task_state it holds while running, and where it ends on success.
#[derive(Debug, Clone, Copy)]
pub struct Transition {
    pub op: Operation,
    pub from: &'static [VmState],
    pub during: TaskState,
    pub to: VmState,
}

use VmState as V;

/// The transitions, as nova's API and compute manager allow them
/// (nova/compute/api.py `check_instance_state`, nova/compute/vm_states.py).
pub const TRANSITIONS: &[Transition] = &[
    Transition {
        op: Operation::Build,
        from: &[V::Building],
        during: TaskState::Spawning,
        to: V::Active,
    },
    Transition {
        op: Operation::Stop,
        from: &[V::Active, V::Rescued, V::Error],
        during: TaskState::PoweringOff,
        to: V::Stopped,
    },
    Transition {
        op: Operation::Start,
        from: &[V::Stopped],
        during: TaskState::PoweringOn,
        to: V::Active,
    },
    Transition {
        op: Operation::SoftReboot,
        from: &[V::Active],
        during: TaskState::Rebooting,
        to: V::Active,
    },
    Transition {
        op: Operation::HardReboot,
        from: &[V::Active, V::Stopped, V::Paused, V::Suspended, V::Error],
        during: TaskState::RebootingHard,
        to: V::Active,
    },
    Transition {
        op: Operation::Pause,
        from: &[V::Active],
        during: TaskState::Pausing,
        to: V::Paused,
    },
    Transition {
        op: Operation::Unpause,
        from: &[V::Paused],
        during: TaskState::Unpausing,
        to: V::Active,
    },
    Transition {
        op: Operation::Suspend,
        from: &[V::Active],
        during: TaskState::Suspending,
        to: V::Suspended,
    },
    Transition {
        op: Operation::Resume,
        from: &[V::Suspended],
        during: TaskState::Resuming,
        to: V::Active,
    },
    Transition {
        op: Operation::Delete,
        from: &[
            V::Active,
            V::Building,
            V::Paused,
            V::Suspended,
            V::Stopped,
            V::Rescued,
            V::Resized,
            V::SoftDeleted,
            V::Error,
            V::Shelved,
            V::ShelvedOffloaded,
        ],
        during: TaskState::Deleting,
        to: V::Deleted,
    },
];

/// The table row of an operation.
pub fn transition(op: Operation) -> &'static Transition {
    // Every Operation has exactly one row; `tests::every_operation_has_one_row` keeps it so.
    TRANSITIONS
        .iter()
        .find(|t| t.op == op)
        .unwrap_or(&TRANSITIONS[0])
}

/// Check that `op` may start on an instance in (`vm`, `task`); returns the
/// row to follow. Delete is allowed while another task runs (as in nova).
pub fn begin(
    op: Operation,
    vm: VmState,
    task: Option<TaskState>,
) -> Result<&'static Transition, StateError> {
    let t = transition(op);
    if !t.from.contains(&vm) {
        return Err(StateError::NotAllowed {
            op,
            from: vm,
            allowed: t
                .from
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    match task {
        Some(busy)
            if op != Operation::Delete
                && busy != t.during
                && !(op == Operation::Build && busy == TaskState::Scheduling) =>
        {
            Err(StateError::Busy(busy))
        }
        _ => Ok(t),
    }
}

/// Whether the manager may move an instance from `from` to `to`: along a
/// table row, or to ERROR from anywhere but DELETED.
pub fn valid_transition(from: VmState, to: VmState) -> bool {
    if from == to {
        return true;
    }
    if to == VmState::Error {
        return from != VmState::Deleted;
    }
    TRANSITIONS
        .iter()
        .any(|t| t.to == to && t.from.contains(&from))
}

/// The power state that goes with a vm_state once an operation has finished.
pub fn expected_power_state(vm: VmState) -> Option<PowerState> {
    match vm {
        VmState::Active | VmState::Rescued | VmState::Resized => Some(PowerState::Running),
        VmState::Paused => Some(PowerState::Paused),
        VmState::Suspended => Some(PowerState::Suspended),
        VmState::Stopped | VmState::Shelved | VmState::ShelvedOffloaded | VmState::SoftDeleted => {
            Some(PowerState::Shutdown)
        }
        VmState::Building | VmState::Deleted | VmState::Error => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_strings_round_trip() {
        for s in VmState::ALL {
            assert_eq!(s.as_str().parse::<VmState>().unwrap(), *s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in TaskState::ALL {
            assert_eq!(s.as_str().parse::<TaskState>().unwrap(), *s);
        }
        assert_eq!(TaskState::ALL.len(), 42);
        assert_eq!(VmState::SoftDeleted.as_str(), "soft-delete");
        assert_eq!(TaskState::PoweringOff.as_str(), "powering-off");
        assert!("bogus".parse::<VmState>().is_err());
    }

    #[test]
    fn power_state_codes_are_novas() {
        assert_eq!(serde_json::to_value(PowerState::Running).unwrap(), 1);
        assert_eq!(
            serde_json::from_value::<PowerState>(4.into()).unwrap(),
            PowerState::Shutdown
        );
        assert!(serde_json::from_value::<PowerState>(2.into()).is_err());
        assert_eq!(PowerState::NoState.name(), "pending");
    }

    #[test]
    fn every_operation_has_one_row() {
        use Operation::*;
        for op in [
            Build, Stop, Start, SoftReboot, HardReboot, Pause, Unpause, Suspend, Resume, Delete,
        ] {
            assert_eq!(
                TRANSITIONS.iter().filter(|t| t.op == op).count(),
                1,
                "{op:?}"
            );
            assert_eq!(transition(op).op, op);
        }
    }

    #[test]
    fn table_rules() {
        assert!(begin(Operation::Stop, VmState::Active, None).is_ok());
        assert!(matches!(
            begin(Operation::Start, VmState::Active, None),
            Err(StateError::NotAllowed { .. })
        ));
        assert!(matches!(
            begin(
                Operation::Pause,
                VmState::Active,
                Some(TaskState::Rebooting)
            ),
            Err(StateError::Busy(_))
        ));
        assert!(begin(Operation::Pause, VmState::Active, Some(TaskState::Pausing)).is_ok());
        assert!(begin(
            Operation::Build,
            VmState::Building,
            Some(TaskState::Scheduling)
        )
        .is_ok());
        assert!(begin(
            Operation::Delete,
            VmState::Active,
            Some(TaskState::Rebooting)
        )
        .is_ok());
        assert!(begin(Operation::Delete, VmState::Deleted, None).is_err());
        assert!(valid_transition(VmState::Building, VmState::Active));
        assert!(valid_transition(VmState::Building, VmState::Error));
        assert!(valid_transition(VmState::Paused, VmState::Deleted));
        assert!(!valid_transition(VmState::Stopped, VmState::Paused));
        assert!(!valid_transition(VmState::Deleted, VmState::Error));
        assert!(!valid_transition(VmState::Deleted, VmState::Active));
    }

    #[test]
    fn every_target_state_has_a_power_state() {
        for t in TRANSITIONS {
            if t.to != VmState::Deleted {
                assert!(expected_power_state(t.to).is_some(), "{:?}", t.op);
            }
        }
    }
}
