//! Booting a guest: memory layout, kernel loading, boot protocols, CPU setup.

pub mod acpi;
pub mod cpuid;
pub mod layout;
pub mod loader;
pub mod mptable;
pub mod pvh;
pub mod regs;
