//! `Instance.power_state` (nova/compute/power_state.py): the driver's
//! vocabulary, kept beside the `ComputeDriver` trait as nova keeps it with
//! the virt layer. The compute manager re-exports it.

use serde::{Deserialize, Serialize};

/// A power_state code nova does not define.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown power_state {0}")]
pub struct UnknownPowerState(pub i64);

/// `Instance.power_state`: an integer on the wire (nova/compute/power_state.py).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PowerState {
    #[default]
    NoState = 0,
    Running = 1,
    Paused = 3,
    Shutdown = 4,
    Crashed = 6,
    Suspended = 7,
}

impl PowerState {
    /// Every value nova defines.
    pub const ALL: &'static [PowerState] = &[
        PowerState::NoState,
        PowerState::Running,
        PowerState::Paused,
        PowerState::Shutdown,
        PowerState::Crashed,
        PowerState::Suspended,
    ];

    /// The integer nova stores.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// From nova's integer.
    pub fn from_code(code: i64) -> Result<Self, UnknownPowerState> {
        PowerState::ALL
            .iter()
            .copied()
            .find(|p| i64::from(p.code()) == code)
            .ok_or(UnknownPowerState(code))
    }

    /// The name nova's API shows (`InstancePowerState`).
    pub fn name(self) -> &'static str {
        match self {
            PowerState::NoState => "pending",
            PowerState::Running => "running",
            PowerState::Paused => "paused",
            PowerState::Shutdown => "shutdown",
            PowerState::Crashed => "crashed",
            PowerState::Suspended => "suspended",
        }
    }
}

impl Serialize for PowerState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.code())
    }
}

impl<'de> Deserialize<'de> for PowerState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = i64::deserialize(d)?;
        PowerState::from_code(code).map_err(serde::de::Error::custom)
    }
}
