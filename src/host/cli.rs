//! `novakvm host ...`: the operator CLI for this host.

use std::process::ExitCode;

use super::inventory::{collect, InventoryOptions};
use super::report::render;
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
///
/// Exit codes: 0 on success, 1 when the host cannot be read, 2 when the
/// configuration (CPU sets, reserved_huge_pages, device_spec) is invalid.
pub fn run(cfg: &Config, cmd: HostCommand) -> ExitCode {
    match cmd {
        HostCommand::Inventory { json, root } => {
            let opts = InventoryOptions::from_config(cfg);
            let inv = match collect(&root, &opts) {
                Ok(inv) => inv,
                Err(e) => {
                    eprintln!("novakvm host inventory: {e}");
                    return ExitCode::from(if e.is_config_error() { 2 } else { 1 });
                }
            };
            if json {
                match serde_json::to_string_pretty(&inv) {
                    Ok(text) => println!("{text}"),
                    Err(e) => {
                        eprintln!("novakvm host inventory: cannot encode JSON: {e}");
                        return ExitCode::from(1);
                    }
                }
            } else {
                print!("{}", render(&inv));
            }
            ExitCode::SUCCESS
        }
    }
}
