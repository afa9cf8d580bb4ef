//! The `novakvm` binary: one executable, several roles chosen by subcommand.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use novakvm::config::{self, ConfigSources};
use novakvm::telemetry::{self, LogFormat};

/// novakvm: a drop-in replacement for OpenStack nova-compute with its own KVM VMM.
#[derive(Debug, Parser)]
#[command(name = "novakvm", version, about)]
struct Cli {
    /// TOML configuration file (default: /etc/novakvm/novakvm.toml when it exists).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<std::path::PathBuf>,

    /// An oslo-style nova.conf INI file read as well (e.g. /etc/nova/nova-cpu.conf).
    #[arg(long = "nova-conf", global = true, value_name = "FILE")]
    nova_conf: Vec<std::path::PathBuf>,

    /// Log output format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    /// Log filter in RUST_LOG syntax (default: $RUST_LOG, else "info").
    #[arg(long, global = true, value_name = "FILTER")]
    log_filter: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the compute agent (the nova-compute replacement).
    Compute,
    /// Run one VM in this process (started by the agent, or by hand for debugging).
    Vmm(Box<novakvm::vmm::cli::VmmArgs>),
    /// Print the effective configuration (all layers merged) as JSON.
    ShowConfig,
    /// Inspect this host.
    Host {
        #[command(subcommand)]
        command: HostCmd,
    },
}

/// `novakvm host ...`.
#[derive(Debug, Subcommand)]
enum HostCmd {
    #[command(flatten)]
    Inventory(novakvm::host::cli::HostCommand),
    /// Show this node's resource provider in Placement (inventories, usages,
    /// traits); with --check, compare it with the host and exit 1 on drift.
    Placement {
        /// Compare with this host's inventory and name each difference.
        #[arg(long)]
        check: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Read sysfs/procfs below this root instead of `/`.
        #[arg(long, value_name = "DIR", default_value = "/")]
        root: std::path::PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = telemetry::init(cli.log_format, cli.log_filter.as_deref()) {
        eprintln!("novakvm: {e}");
        return ExitCode::from(2);
    }
    let sources = ConfigSources {
        toml_file: cli.config.clone(),
        nova_conf: cli.nova_conf.clone(),
    };
    match cli.command {
        // The VMM takes its whole description from its spec or flags, not from config.
        Command::Vmm(args) => novakvm::vmm::cli::run(*args),
        Command::Compute => match config::load(&sources) {
            Ok(cfg) => novakvm::compute::service::run(cfg, start_options(&sources)),
            Err(e) => config_failed(&e),
        },
        Command::ShowConfig => match config::load(&sources) {
            Ok(cfg) => match serde_json::to_string_pretty(&cfg) {
                Ok(text) => {
                    println!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("novakvm: cannot print the configuration: {e}");
                    ExitCode::from(1)
                }
            },
            Err(e) => config_failed(&e),
        },
        Command::Host { command } => match config::load(&sources) {
            Ok(cfg) => match command {
                HostCmd::Inventory(c) => novakvm::host::cli::run(&cfg, c),
                HostCmd::Placement { check, json, root } => {
                    novakvm::compute::placement_cli::run(&cfg, &root, check, json)
                }
            },
            Err(e) => config_failed(&e),
        },
    }
}

/// Where the compute agent looks for `compute_id` besides `state_path`:
/// the directories of the configuration files, as nova.
fn start_options(sources: &ConfigSources) -> novakvm::compute::service::StartOptions {
    let mut dirs: Vec<std::path::PathBuf> = Vec::new();
    for f in sources.nova_conf.iter().chain(sources.toml_file.iter()) {
        if let Some(d) = f.parent() {
            let d = if d.as_os_str().is_empty() {
                std::path::PathBuf::from(".")
            } else {
                d.to_path_buf()
            };
            if !dirs.contains(&d) {
                dirs.push(d);
            }
        }
    }
    // `my_ip` is read here: the shared Config does not carry it.
    let my_ip = config::figment(sources)
        .ok()
        .and_then(|f| f.extract_inner::<String>("default.my_ip").ok())
        .and_then(|s| s.trim().parse().ok());
    novakvm::compute::service::StartOptions {
        config_dirs: dirs,
        host_root: None,
        my_ip,
    }
}

fn config_failed(e: &config::ConfigError) -> ExitCode {
    eprintln!("novakvm: {e}");
    ExitCode::from(2)
}
