//! Host inventory, read from a sysfs/procfs root (a fixture tree in tests).

pub mod cli;
