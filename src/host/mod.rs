//! Host inventory, read from a sysfs/procfs root (a fixture tree in tests).
//!
//! - [`sysfs`]: file access below the root, with errors naming the path.
//! - [`cpu`], [`cpu_traits`]: online CPUs, topology, model, flags -> traits.
//! - [`cpuset`]: nova's CPU-set syntax and the VCPU/PCPU sets.
//! - [`numa`], [`hugepages`]: NUMA cells with memory and hugepages.
//! - [`disk`]: space on the file system of `instances_path`.
//! - [`pci_spec`]: `[pci] device_spec` parsing and matching as nova 34.
//! - [`sriov`]: physical functions and their VFs.
//! - [`inventory`]: all of the above in one serde structure.
//! - [`report`], [`cli`]: `novakvm host inventory` text and JSON output.

pub mod cli;
pub mod cpu;
pub mod cpu_traits;
pub mod cpuset;
pub mod disk;
pub mod hugepages;
pub mod inventory;
pub mod numa;
pub mod pci_spec;
pub mod process;
pub mod report;
pub mod sriov;
pub mod sysfs;

pub use inventory::{collect, HostInventory, InventoryError, InventoryOptions};
