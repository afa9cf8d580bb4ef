//! The virt layer: what nova/virt/driver.py is to nova. The compute manager
//! talks only to [`ComputeDriver`]; [`fake::FakeDriver`] keeps its semantics
//! in memory (with failure injection) so the manager's paths are testable
//! without KVM, and the KVM driver runs each VM as a `novakvm vmm` process.

pub mod capabilities;
pub mod driver;
pub mod fake;
pub mod images;
pub mod kvm;
pub mod pending;
pub mod power_state;

pub use driver::*;
