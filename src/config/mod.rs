//! Configuration through figment, no oslo.
//!
//! Precedence, lowest first: built-in defaults < oslo-style INI files given
//! with `--nova-conf` (a DevStack `nova-cpu.conf` works unchanged) < the TOML
//! file (`--config`, else `/etc/novakvm/novakvm.toml` when it exists) <
//! environment variables `NOVAKVM_<SECTION>__<OPTION>`.
//!
//! Option names follow nova.conf. Options novakvm does not know are ignored
//! with one debug line each; options it knows but cannot honour are errors.
//! Every error names the file, the section, the option and what is wrong.

pub mod ini;
mod sections;

use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};

pub use sections::*;

/// The TOML file read when `--config` is not given, if it exists.
pub const DEFAULT_TOML: &str = "/etc/novakvm/novakvm.toml";

/// Where configuration comes from.
#[derive(Debug, Clone, Default)]
pub struct ConfigSources {
    pub toml_file: Option<PathBuf>,
    pub nova_conf: Vec<PathBuf>,
}

/// A configuration problem, always with where it came from.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration error in {file}: [{section}] {option}: {what}")]
    Option {
        file: String,
        section: String,
        option: String,
        what: String,
    },
    #[error("configuration error in {file}: {what}")]
    File { file: String, what: String },
}

/// Load and validate the configuration.
pub fn load(sources: &ConfigSources) -> Result<Config, ConfigError> {
    let figment = figment(sources)?;
    let cfg: Config = figment
        .extract_lossy()
        .map_err(|e| from_figment(&figment, e))?;
    report_unknown(&figment);
    validate(&cfg, &figment)?;
    Ok(cfg)
}

/// Build the layered figment without extracting it.
pub fn figment(sources: &ConfigSources) -> Result<Figment, ConfigError> {
    let mut fig = Figment::from(Serialized::defaults(Config::default()));
    for path in &sources.nova_conf {
        if !path.is_file() {
            return Err(ConfigError::File {
                file: path.display().to_string(),
                what: "no such file".to_string(),
            });
        }
        fig = fig.merge(ini::IniFile::new(path));
    }
    let toml = match &sources.toml_file {
        Some(p) if !p.is_file() => {
            return Err(ConfigError::File {
                file: p.display().to_string(),
                what: "no such file".to_string(),
            })
        }
        Some(p) => Some(p.clone()),
        None => Some(PathBuf::from(DEFAULT_TOML)).filter(|p| p.is_file()),
    };
    if let Some(p) = toml {
        fig = fig.merge(LowercaseSections(Toml::file(&p), p));
    }
    let env = Env::prefixed("NOVAKVM_")
        .filter(|k| k.as_str().contains("__"))
        .split("__");
    Ok(fig.merge(env))
}

/// Lowercases top-level keys so `[DEFAULT]` in TOML means `default`.
struct LowercaseSections(figment::providers::Data<Toml>, PathBuf);

impl Provider for LowercaseSections {
    fn metadata(&self) -> Metadata {
        Metadata::from("TOML file", figment::Source::File(self.1.clone()))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut out = Map::new();
        for (profile, dict) in self.0.data()? {
            let lowered: Dict = dict
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect();
            out.insert(profile, lowered);
        }
        Ok(out)
    }
}

/// Where a key's value came from, for error messages.
fn source_of(figment: &Figment, key: &str) -> String {
    figment
        .find_metadata(key)
        .map(describe_metadata)
        .unwrap_or_else(|| "built-in defaults".to_string())
}

fn describe_metadata(md: &Metadata) -> String {
    match &md.source {
        Some(figment::Source::File(p)) => p.display().to_string(),
        Some(other) => format!("{} ({other})", md.name),
        None => md.name.to_string(),
    }
}

fn from_figment(figment: &Figment, err: figment::Error) -> ConfigError {
    let key = err.path.join(".");
    let file = err
        .metadata
        .as_ref()
        .map(describe_metadata)
        .unwrap_or_else(|| source_of(figment, &key));
    let what = err.kind.to_string();
    match err.path.as_slice() {
        [section, option, ..] => ConfigError::Option {
            file,
            section: section_label(section),
            option: option.clone(),
            what,
        },
        _ => ConfigError::File {
            file,
            what: if key.is_empty() {
                what
            } else {
                format!("{key}: {what}")
            },
        },
    }
}

fn section_label(section: &str) -> String {
    if section == "default" {
        "DEFAULT".to_string()
    } else {
        section.to_string()
    }
}

/// Every (section, option) novakvm knows: the keys of the default config.
fn known_keys() -> Vec<(String, String)> {
    let mut keys = Vec::new();
    if let Ok(serde_json::Value::Object(sections)) = serde_json::to_value(Config::default()) {
        for (section, opts) in sections {
            if let serde_json::Value::Object(opts) = opts {
                keys.extend(opts.keys().map(|o| (section.clone(), o.clone())));
            }
        }
    }
    keys
}

/// Log one debug line per option that novakvm does not know.
fn report_unknown(figment: &Figment) {
    let known = known_keys();
    let Ok(Value::Dict(_, root)) = figment.find_value("") else {
        return;
    };
    for (section, value) in root {
        let Value::Dict(_, opts) = value else {
            continue;
        };
        for option in opts.keys() {
            if !known.iter().any(|(s, o)| *s == section && o == option) {
                tracing::debug!(
                    file = %source_of(figment, &format!("{section}.{option}")),
                    section = %section_label(&section),
                    option = %option,
                    "option not used by novakvm, ignored"
                );
            }
        }
    }
}

/// Compute drivers whose meaning novakvm can honour, and what they mean here.
const DRIVERS: &[&str] = &[
    "novakvm.KvmDriver",
    "libvirt.LibvirtDriver",
    "fake.FakeDriver",
    "fake.FakeDriverWithoutFakeNodes",
];

fn validate(cfg: &Config, figment: &Figment) -> Result<(), ConfigError> {
    let bad = |section: &str, option: &str, what: String| ConfigError::Option {
        file: source_of(figment, &format!("{section}.{option}")),
        section: section_label(section),
        option: option.to_string(),
        what,
    };
    let d = &cfg.default;
    if d.host.trim().is_empty() {
        return Err(bad("default", "host", "must not be empty".into()));
    }
    if !DRIVERS.contains(&d.compute_driver.as_str()) {
        return Err(bad(
            "default",
            "compute_driver",
            format!(
                "{:?} cannot be honoured: novakvm drives KVM itself; use one of {}",
                d.compute_driver,
                DRIVERS.join(", ")
            ),
        ));
    }
    if !(d.transport_url.starts_with("rabbit://") || d.transport_url.starts_with("amqp://")) {
        return Err(bad(
            "default",
            "transport_url",
            format!(
                "{:?}: only rabbit:// transports are supported",
                d.transport_url
            ),
        ));
    }
    let ratios = [
        ("cpu_allocation_ratio", d.cpu_allocation_ratio),
        ("ram_allocation_ratio", d.ram_allocation_ratio),
        ("disk_allocation_ratio", d.disk_allocation_ratio),
        (
            "initial_cpu_allocation_ratio",
            Some(d.initial_cpu_allocation_ratio),
        ),
        (
            "initial_ram_allocation_ratio",
            Some(d.initial_ram_allocation_ratio),
        ),
        (
            "initial_disk_allocation_ratio",
            Some(d.initial_disk_allocation_ratio),
        ),
    ];
    for (name, value) in ratios {
        if let Some(v) = value {
            if !(v.is_finite() && v > 0.0) {
                return Err(bad(
                    "default",
                    name,
                    format!("{v} is not a positive number"),
                ));
            }
        }
    }
    if d.report_interval == 0 {
        return Err(bad(
            "default",
            "report_interval",
            "must be at least 1 second".into(),
        ));
    }
    if d.service_down_time <= d.report_interval {
        return Err(bad(
            "default",
            "service_down_time",
            format!(
                "{} must be greater than report_interval ({})",
                d.service_down_time, d.report_interval
            ),
        ));
    }
    if d.max_concurrent_builds == 0 {
        // nova treats 0 as unlimited; novakvm needs a bound.
        return Err(bad(
            "default",
            "max_concurrent_builds",
            "0 (unlimited) is not supported; give a bound".into(),
        ));
    }
    let rabbit = &cfg.oslo_messaging_rabbit;
    if rabbit.rabbit_stream_fanout {
        return Err(bad(
            "oslo_messaging_rabbit",
            "rabbit_stream_fanout",
            "stream queues for fanout are not supported by novakvm".into(),
        ));
    }
    for (i, entry) in cfg.compute.reserved_huge_pages.iter().enumerate() {
        if let Err(what) = parse_reserved_huge_pages(entry) {
            return Err(bad(
                "compute",
                "reserved_huge_pages",
                format!("entry {} {entry:?}: {what}", i + 1),
            ));
        }
    }
    Ok(())
}

/// One `[compute] reserved_huge_pages` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReservedHugePages {
    pub node: u32,
    pub size_kib: u64,
    pub count: u64,
}

/// Parse `node:0,size:2048,count:64` as nova does (size in KiB, or a value
/// with a binary unit such as `2MB`, `1GB`, `1GiB`).
pub fn parse_reserved_huge_pages(entry: &str) -> Result<ReservedHugePages, String> {
    let (mut node, mut size, mut count) = (None, None, None);
    for part in entry.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once(':')
            .ok_or_else(|| format!("{part:?} is not key:value"))?;
        let v = v.trim();
        match k.trim() {
            "node" => {
                node = Some(
                    v.parse::<u32>()
                        .map_err(|_| format!("node {v:?} is not a number"))?,
                )
            }
            "size" => size = Some(parse_size_kib(v)?),
            "count" => {
                count = Some(
                    v.parse::<u64>()
                        .map_err(|_| format!("count {v:?} is not a number"))?,
                )
            }
            other => {
                return Err(format!(
                    "unknown key {other:?} (expected node, size, count)"
                ))
            }
        }
    }
    match (node, size, count) {
        (Some(node), Some(size_kib), Some(count)) => Ok(ReservedHugePages {
            node,
            size_kib,
            count,
        }),
        _ => Err("node, size and count are all required".to_string()),
    }
}

fn parse_size_kib(v: &str) -> Result<u64, String> {
    if let Ok(n) = v.parse::<u64>() {
        return Ok(n);
    }
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("size {v:?} is not a size"))?;
    let mult = match unit
        .trim()
        .trim_end_matches(['B', 'b'])
        .trim_end_matches('i')
    {
        "K" | "k" => 1,
        "M" | "m" => 1024,
        "G" | "g" => 1024 * 1024,
        _ => return Err(format!("size {v:?} has an unknown unit")),
    };
    Ok(n * mult)
}

/// Parse a config from strings, for tests: (TOML text, INI texts).
pub fn load_from_files(
    toml_file: Option<&Path>,
    nova_conf: &[&Path],
) -> Result<Config, ConfigError> {
    load(&ConfigSources {
        toml_file: toml_file.map(Path::to_path_buf),
        nova_conf: nova_conf.iter().map(|p| p.to_path_buf()).collect(),
    })
}
