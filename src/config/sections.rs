//! The configuration sections, with nova.conf's option names and defaults.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use crate::rpc::options::RabbitOptions;

/// The whole configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// `[DEFAULT]` (written `default` in the environment: `NOVAKVM_DEFAULT__HOST`).
    pub default: DefaultOptions,
    pub compute: ComputeOptions,
    pub pci: PciOptions,
    pub placement: KeystoneAuthOptions,
    pub glance: GlanceOptions,
    pub neutron: KeystoneAuthOptions,
    pub oslo_messaging_rabbit: RabbitOptions,
}

/// `[DEFAULT]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DefaultOptions {
    pub host: String,
    pub transport_url: String,
    pub control_exchange: String,
    pub compute_driver: String,
    pub state_path: PathBuf,
    /// Defaults to `$state_path/instances`.
    pub instances_path: Option<PathBuf>,
    pub reserved_host_memory_mb: u64,
    pub reserved_host_cpus: u32,
    pub reserved_host_disk_mb: u64,
    pub cpu_allocation_ratio: Option<f64>,
    pub ram_allocation_ratio: Option<f64>,
    pub disk_allocation_ratio: Option<f64>,
    pub initial_cpu_allocation_ratio: f64,
    pub initial_ram_allocation_ratio: f64,
    pub initial_disk_allocation_ratio: f64,
    pub report_interval: u64,
    pub service_down_time: u64,
    pub max_concurrent_builds: u32,
    pub rpc_response_timeout: u64,
    pub executor_thread_pool_size: u32,
    pub update_resources_interval: i64,
}

impl Default for DefaultOptions {
    fn default() -> Self {
        Self {
            host: default_host(),
            transport_url: "rabbit://guest:guest@127.0.0.1:5672/".to_string(),
            control_exchange: "nova".to_string(),
            compute_driver: "novakvm.KvmDriver".to_string(),
            state_path: PathBuf::from("/var/lib/novakvm"),
            instances_path: None,
            reserved_host_memory_mb: 512,
            reserved_host_cpus: 0,
            reserved_host_disk_mb: 0,
            cpu_allocation_ratio: None,
            ram_allocation_ratio: None,
            disk_allocation_ratio: None,
            initial_cpu_allocation_ratio: 4.0,
            initial_ram_allocation_ratio: 1.0,
            initial_disk_allocation_ratio: 1.0,
            report_interval: 10,
            service_down_time: 60,
            max_concurrent_builds: 10,
            rpc_response_timeout: 60,
            executor_thread_pool_size: 64,
            update_resources_interval: 0,
        }
    }
}

impl DefaultOptions {
    /// `instances_path`, or `$state_path/instances` as nova defaults it.
    pub fn instances_path(&self) -> PathBuf {
        self.instances_path
            .clone()
            .unwrap_or_else(|| self.state_path.join("instances"))
    }
}

/// The kernel's host name, as nova's `[DEFAULT] host` default (socket.gethostname()).
fn default_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// `[compute]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ComputeOptions {
    /// Host CPUs for pinned (PCPU) guests, nova's CPU-set syntax (`0-3,^2,8`).
    pub cpu_dedicated_set: Option<String>,
    /// Host CPUs for floating (VCPU) guests and emulator threads.
    pub cpu_shared_set: Option<String>,
    /// `node:0,size:2048,count:64` entries (size in KiB, or with a unit: `1GB`).
    pub reserved_huge_pages: Vec<String>,
}

/// `[pci]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PciOptions {
    /// JSON objects in nova's `device_spec` syntax, one per entry.
    pub device_spec: Vec<String>,
    /// JSON objects in nova's PCI `alias` syntax.
    pub alias: Vec<String>,
}

/// keystoneauth options as nova reads them for `[placement]` and `[neutron]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct KeystoneAuthOptions {
    pub auth_type: Option<String>,
    pub auth_url: Option<String>,
    pub endpoint_override: Option<String>,
    pub endpoint: Option<String>,
    pub token: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub user_domain_name: Option<String>,
    pub user_domain_id: Option<String>,
    pub project_name: Option<String>,
    pub project_domain_name: Option<String>,
    pub project_domain_id: Option<String>,
    pub application_credential_id: Option<String>,
    pub application_credential_name: Option<String>,
    pub application_credential_secret: Option<String>,
    pub region_name: Option<String>,
    pub valid_interfaces: Option<String>,
    pub url: Option<String>,
}

/// `[glance]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GlanceOptions {
    pub api_servers: Option<String>,
    pub endpoint_override: Option<String>,
    pub region_name: Option<String>,
    pub valid_interfaces: Option<String>,
    pub num_retries: u32,
}
