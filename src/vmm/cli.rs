//! `novakvm vmm`: arguments and entry point of the per-VM process.

use std::process::ExitCode;

/// Arguments of `novakvm vmm`.
#[derive(Debug, clap::Args)]
pub struct VmmArgs {
    /// JSON VM spec (schema: api-schemas/vm-spec.schema.json).
    #[arg(long, value_name = "FILE")]
    pub spec: Option<std::path::PathBuf>,
}

/// Run one VM in the foreground.
pub fn run(_args: VmmArgs) -> ExitCode {
    eprintln!("novakvm vmm: not built yet");
    ExitCode::from(1)
}
