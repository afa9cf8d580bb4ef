//! Legacy devices on the port I/O bus: COM1 UART, i8042 (reset only), ACPI PM1a control.

pub mod bus;
pub mod i8042;
pub mod pm;
pub mod serial;

/// What a port write asks the VMM to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PioAction {
    /// Nothing.
    None,
    /// Power the VM off.
    PowerOff,
    /// Reset the VM.
    Reset,
}
