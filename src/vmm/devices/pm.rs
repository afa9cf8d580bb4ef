//! ACPI-style power management ports, laid out like QEMU q35 (ICH9) so one test guest powers
//! off under both: PM1a_CNT at 0x604 (SLP_EN = bit 13) and the reset control register 0xcf9.

use super::PioAction;

/// PM1a event block (status/enable; reads as zero).
pub const PM1A_EVT: u16 = 0x600;
/// PM1a control register.
pub const PM1A_CNT: u16 = 0x604;
/// High byte of PM1a_CNT: the ACPI FADT's sleep control register.
pub const PM1A_CNT_HIGH: u16 = 0x605;
/// Reset control register.
pub const RESET_CNT: u16 = 0xcf9;
const SLP_EN: u16 = 1 << 13;

/// Write to a PM port; `data` is the access (1, 2 or 4 bytes, little endian).
pub fn write(port: u16, data: &[u8]) -> PioAction {
    match port {
        PM1A_CNT if data.len() >= 2 => {
            let v = u16::from_le_bytes([data[0], data[1]]);
            if v & SLP_EN != 0 {
                PioAction::PowerOff
            } else {
                PioAction::None
            }
        }
        // 8-bit access to the high byte: SLP_EN is bit 5 there (FADT SLEEP_CONTROL_REG).
        PM1A_CNT_HIGH if data.len() == 1 => {
            if data[0] & (SLP_EN >> 8) as u8 != 0 {
                PioAction::PowerOff
            } else {
                PioAction::None
            }
        }
        // Bit 2 = reset CPU (0x6 = hard reset, 0xe = full reset).
        RESET_CNT if data.len() == 1 && data[0] & 0x4 != 0 => PioAction::Reset,
        _ => PioAction::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slp_en_powers_off() {
        assert_eq!(write(PM1A_CNT, &[0x00, 0x20]), PioAction::PowerOff);
        assert_eq!(write(PM1A_CNT, &[0x00, 0x3c]), PioAction::PowerOff);
        assert_eq!(write(PM1A_CNT, &[0x01, 0x00]), PioAction::None);
        assert_eq!(write(PM1A_CNT, &[0x20]), PioAction::None);
        assert_eq!(write(PM1A_CNT_HIGH, &[0x34]), PioAction::PowerOff);
        assert_eq!(write(PM1A_CNT_HIGH, &[0x14]), PioAction::None);
        assert_eq!(write(RESET_CNT, &[0x06]), PioAction::Reset);
        assert_eq!(write(RESET_CNT, &[0x02]), PioAction::None);
    }
}
