//! Minimal i8042 keyboard controller: only the CPU reset command (0xFE on port 0x64).

use super::PioAction;

/// Data port.
pub const DATA_PORT: u16 = 0x60;
/// Command/status port.
pub const COMMAND_PORT: u16 = 0x64;
const CMD_RESET_CPU: u8 = 0xfe;

/// Read from the controller: status 0 (no data, input buffer empty), data 0.
pub fn read(_port: u16) -> u8 {
    0
}

/// Write to the controller.
pub fn write(port: u16, value: u8) -> PioAction {
    if port == COMMAND_PORT && value == CMD_RESET_CPU {
        PioAction::Reset
    } else {
        PioAction::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_fe_on_64_resets() {
        assert_eq!(write(COMMAND_PORT, 0xfe), PioAction::Reset);
        assert_eq!(write(DATA_PORT, 0xfe), PioAction::None);
        assert_eq!(write(COMMAND_PORT, 0xd1), PioAction::None);
    }
}
