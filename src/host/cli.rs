//! `novakvm host ...`: the operator CLI for this host.

use std::process::ExitCode;

use crate::config::Config;

/// `novakvm host` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum HostCommand {
    /// Print CPU topology, NUMA cells, hugepages, PCPU/VCPU sets and SR-IOV VFs.
    Inventory {
        /// Print JSON (schema: api-schemas/host-inventory.schema.json).
        #[arg(long)]
        json: bool,
        /// Read sysfs/procfs below this root instead of `/`.
        #[arg(long, value_name = "DIR", default_value = "/")]
        root: std::path::PathBuf,
    },
}

/// Run a `host` subcommand.
pub fn run(_cfg: &Config, _cmd: HostCommand) -> ExitCode {
    eprintln!("novakvm host: not built yet");
    ExitCode::from(1)
}
