//! Devices: COM1 UART, i8042 (reset only), ACPI PM1a control on the port I/O bus; PCI
//! bus 0 (config ports 0xCF8/0xCFC, BARs in the MMIO hole) with virtio-pci devices.

pub mod bus;
pub mod i8042;
pub mod pci;
pub mod pm;
pub mod serial;
pub mod virtio;

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
