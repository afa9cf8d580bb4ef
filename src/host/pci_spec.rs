//! `[pci] device_spec` parsing and matching, as nova 34 does it
//! (`nova/pci/whitelist.py` and `nova/pci/devspec.py`).
//!
//! Each config entry is JSON: one object or a list of objects. An object may
//! hold `vendor_id` and `product_id` (hex, `*` for any), either `address` or
//! `devname`, and tags (every other key, e.g. `physical_network`,
//! `remote_managed`, `trusted`). `address` is a glob string
//! (`*:0a:00.*`, `0000:81:00.0`, `:81:`) or an object of regular expressions
//! `{"domain": ".*", "bus": "81", "slot": "00", "function": "[0-3]"}`.
//! When the address names a single SR-IOV physical function on this host (or
//! `devname` names a PF netdev), the spec also matches that PF's VFs.
//!
//! Deviations from nova, where nova would crash or could never work:
//! a non-string `vendor_id`/`product_id`/regex field is a clear error instead
//! of a Python `TypeError`; regexes use Rust `regex` syntax (no look-around or
//! backreferences); for `remote_managed` PF specs the PF's own product id is
//! read from sysfs `device` (nova reads a `product` file sysfs does not have)
//! and the PF address is formatted for glob specs too.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::sysfs::SysRoot;

const ANY: &str = "*";
const REGEX_ANY: &str = ".*";
const MAX_VENDOR_ID: i64 = 0xFFFF;
const MAX_PRODUCT_ID: i64 = 0xFFFF;
const MAX_FUNC: i64 = 0x7;
const MAX_DOMAIN: i64 = 0xFFFF;
const MAX_BUS: i64 = 0xFF;
const MAX_SLOT: i64 = 0x1F;
const TRUE_STRINGS: [&str; 6] = ["1", "t", "true", "on", "y", "yes"];
const FALSE_STRINGS: [&str; 6] = ["0", "f", "false", "off", "n", "no"];

/// What is wrong with one device spec (nova's wording where nova has one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PciSpecError {
    #[error("Invalid entry: not valid JSON ({why})")]
    InvalidJson { why: String },
    #[error("Invalid entry; Expecting list or dict, got {found}")]
    NotListOrDict { found: String },
    #[error("Invalid entry: '{item}'; Expecting dict")]
    NotDict { item: String },
    #[error("The PCI address {address} has an incorrect format: {why}")]
    WrongAddressFormat { address: String, why: String },
    #[error("property {property} ('{value}') does not parse as a hex number.")]
    NotHex {
        property: &'static str,
        value: String,
    },
    #[error(
        "property {property} ({value}) is greater than the maximum allowable value ({max:X})."
    )]
    TooLarge {
        property: &'static str,
        value: String,
        max: i64,
    },
    #[error("property {property} must be a string, got {found}")]
    NotString {
        property: &'static str,
        found: String,
    },
    #[error(
        "Invalid PCI Whitelist: The PCI whitelist can specify devname or address, but not both"
    )]
    DevnameWithAddress,
    #[error("Cannot parse tag '{tag}': Unrecognized value '{value}', acceptable values are: '0', '1', 'f', 'false', 'n', 'no', 'off', 'on', 't', 'true', 'y', 'yes'")]
    BadBoolTag { tag: &'static str, value: String },
    #[error("one_time_use=true requires pci.report_in_placement to be enabled")]
    OneTimeUseNeedsPlacement,
    #[error("Invalid PCI Whitelist: A device specified as \"remote_managed\" is not actually present on the host")]
    RemoteManagedNotPresent,
    #[error("Invalid PCI Whitelist: PFs must not have the \"remote_managed\" tag, device address: {address}")]
    RemoteManagedPf { address: String },
    #[error("PCI device {address} not found ({what})")]
    NotFoundById { address: String, what: String },
    #[error("the specified VF vendor ID {vendor_id} and product ID {product_id} do not match the expected VF IDs based on the corresponding PF identified by PCI address {pf_addr}")]
    VfIdsMismatch {
        vendor_id: String,
        product_id: String,
        pf_addr: String,
    },
}

/// A bad `[pci] device_spec` entry, with which entry it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid [pci]device_spec config: entry {index} {entry:?}: {problem}")]
pub struct DeviceSpecError {
    /// 1-based position among the `device_spec` options.
    pub index: usize,
    /// The entry text.
    pub entry: String,
    #[source]
    pub problem: PciSpecError,
}

/// One address field as nova keeps it: a normalised hex string or `*`.
type Field = String;

/// A PCI address as four normalised fields (`0000`, `81`, `00`, `1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciAddress {
    pub domain: Field,
    pub bus: Field,
    pub slot: Field,
    pub func: Field,
}

impl std::fmt::Display for PciAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}.{}",
            self.domain, self.bus, self.slot, self.func
        )
    }
}

impl PciAddress {
    /// Parse a full `dddd:bb:ss.f` address (nova's `PhysicalPciAddress`).
    pub fn parse(text: &str) -> Result<Self, PciSpecError> {
        let wrong = |why: &str| PciSpecError::WrongAddressFormat {
            address: text.to_string(),
            why: why.to_string(),
        };
        let (dbs, func) = text.split_once('.').unwrap_or((text, ""));
        let parts: Vec<&str> = dbs.split(':').collect();
        let [domain, bus, slot] = parts.as_slice() else {
            return Err(wrong("expected <domain>:<bus>:<slot>.<function>"));
        };
        Ok(Self {
            func: hex_field("func", func, MAX_FUNC, 1)?,
            domain: hex_field("domain", domain, MAX_DOMAIN, 4)?,
            bus: hex_field("bus", bus, MAX_BUS, 2)?,
            slot: hex_field("slot", slot, MAX_SLOT, 2)?,
        })
    }

    fn is_single(&self) -> bool {
        [&self.domain, &self.bus, &self.slot, &self.func]
            .iter()
            .all(|f| f.bytes().all(|b| b.is_ascii_hexdigit()))
    }
}

/// The address part of a spec.
#[derive(Debug, Clone)]
pub enum AddressSpec {
    /// A full address (from `devname` naming a PF).
    Physical(PciAddress),
    /// A glob string; fields may be `*`.
    Glob(PciAddress),
    /// Regular expressions per field, matched at the start like Python's `re.match`.
    Regex {
        fields: PciAddress,
        regexes: Box<[regex::Regex; 4]>,
    },
}

impl AddressSpec {
    fn fields(&self) -> &PciAddress {
        match self {
            AddressSpec::Physical(a) | AddressSpec::Glob(a) => a,
            AddressSpec::Regex { fields, .. } => fields,
        }
    }

    fn matches(&self, addr: &PciAddress) -> bool {
        match self {
            AddressSpec::Physical(a) => a == addr,
            AddressSpec::Glob(g) => {
                let ok = |spec: &str, dev: &str| spec == ANY || spec == dev;
                ok(&g.domain, &addr.domain)
                    && ok(&g.bus, &addr.bus)
                    && ok(&g.slot, &addr.slot)
                    && ok(&g.func, &addr.func)
            }
            AddressSpec::Regex { regexes, .. } => {
                regexes[0].is_match(&addr.domain)
                    && regexes[1].is_match(&addr.bus)
                    && regexes[2].is_match(&addr.slot)
                    && regexes[3].is_match(&addr.func)
            }
        }
    }
}

/// nova's `WhitelistPciAddress`: an address spec and whether it names a PF.
#[derive(Debug, Clone)]
pub struct WhitelistAddress {
    pub spec: AddressSpec,
    pub is_physical_function: bool,
}

impl WhitelistAddress {
    fn new(addr: &Value, is_pf: bool, root: &SysRoot) -> Result<Self, PciSpecError> {
        if is_pf {
            let Value::String(s) = addr else {
                return Err(PciSpecError::WrongAddressFormat {
                    address: addr.to_string(),
                    why: "expected a string".into(),
                });
            };
            return Ok(Self {
                spec: AddressSpec::Physical(PciAddress::parse(s)?),
                is_physical_function: true,
            });
        }
        let spec = match addr {
            Value::String(s) => AddressSpec::Glob(parse_glob(s)?),
            Value::Object(map) => parse_regex(map)?,
            other => {
                return Err(PciSpecError::WrongAddressFormat {
                    address: other.to_string(),
                    why: "expected a string or an object".into(),
                })
            }
        };
        let fields = spec.fields();
        let is_physical_function =
            fields.is_single() && is_physical_function(root, &fields.to_string());
        Ok(Self {
            spec,
            is_physical_function,
        })
    }

    /// Match a device address, and its PF's address when it is a VF.
    pub fn matches(&self, addr: &PciAddress, parent: Option<&PciAddress>) -> bool {
        if self.is_physical_function {
            if let Some(parent) = parent {
                if self.spec.matches(parent) {
                    return true;
                }
            }
        }
        self.spec.matches(addr)
    }
}

fn parse_glob(text: &str) -> Result<PciAddress, PciSpecError> {
    let mut out = PciAddress {
        domain: ANY.into(),
        bus: ANY.into(),
        slot: ANY.into(),
        func: ANY.into(),
    };
    let (dbs, func) = text.split_once('.').unwrap_or((text, ""));
    if !func.is_empty() {
        out.func = hex_field("func", func.trim(), MAX_FUNC, 1)?;
    }
    if !dbs.is_empty() {
        let fields: Vec<&str> = dbs.split(':').collect();
        if fields.len() > 3 {
            return Err(PciSpecError::WrongAddressFormat {
                address: text.to_string(),
                why: "more than three ':'-separated fields before '.'".into(),
            });
        }
        let mut all: Vec<&str> = vec![ANY; 3 - fields.len()];
        all.extend(fields);
        let f: Vec<&str> = all
            .iter()
            .map(|s| if s.trim().is_empty() { ANY } else { s.trim() })
            .collect();
        out.domain = hex_field("domain", f[0], MAX_DOMAIN, 4)?;
        out.bus = hex_field("bus", f[1], MAX_BUS, 2)?;
        out.slot = hex_field("slot", f[2], MAX_SLOT, 2)?;
    }
    Ok(out)
}

fn parse_regex(map: &serde_json::Map<String, Value>) -> Result<AddressSpec, PciSpecError> {
    let field = |key: &'static str| -> Result<String, PciSpecError> {
        match map.get(key) {
            None => Ok(REGEX_ANY.to_string()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(PciSpecError::NotString {
                property: key,
                found: other.to_string(),
            }),
        }
    };
    let fields = PciAddress {
        domain: field("domain")?,
        bus: field("bus")?,
        slot: field("slot")?,
        func: field("function")?,
    };
    let compile = |pat: &str| {
        regex::Regex::new(&format!(r"\A(?:{pat})")).map_err(|e| PciSpecError::WrongAddressFormat {
            address: Value::Object(map.clone()).to_string(),
            why: format!("bad regular expression {pat:?}: {e}"),
        })
    };
    let regexes = Box::new([
        compile(&fields.domain)?,
        compile(&fields.bus)?,
        compile(&fields.slot)?,
        compile(&fields.func)?,
    ]);
    Ok(AddressSpec::Regex { fields, regexes })
}

/// nova's `_set_pci_dev_info`: `*` stays, else a hex number up to `max`,
/// formatted with `width` digits like Python's `'%0Nx'`.
fn hex_field(
    property: &'static str,
    value: &str,
    max: i64,
    width: usize,
) -> Result<String, PciSpecError> {
    if value == ANY {
        return Ok(ANY.to_string());
    }
    let v = py_int_hex(value).ok_or_else(|| PciSpecError::NotHex {
        property,
        value: value.to_string(),
    })?;
    if v > max {
        return Err(PciSpecError::TooLarge {
            property,
            value: value.to_string(),
            max,
        });
    }
    Ok(if v < 0 {
        format!("-{:0w$x}", v.unsigned_abs(), w = width.saturating_sub(1))
    } else {
        format!("{v:0width$x}")
    })
}

/// Python's `int(text, 16)`: spaces around, a sign, an optional `0x`, `_`
/// between digits. `None` when it is not a number or does not fit an `i64`.
fn py_int_hex(text: &str) -> Option<i64> {
    let t = text.trim();
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (prefixed, digits) = match t.get(..2) {
        Some("0x") | Some("0X") => (true, &t[2..]),
        _ => (false, t),
    };
    let digits = if prefixed {
        digits.strip_prefix('_').unwrap_or(digits)
    } else {
        digits
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return None;
    }
    let mut v: i64 = 0;
    for c in digits.chars().filter(|&c| c != '_') {
        v = v.checked_mul(16)?.checked_add(i64::from(c.to_digit(16)?))?;
    }
    Some(if neg { -v } else { v })
}

/// Python truthiness of a JSON value.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// oslo's `bool_from_string`: `Some(bool)` when recognised, `None` otherwise.
fn bool_from_value(v: &Value) -> Option<bool> {
    let text = match v {
        Value::Bool(b) => return Some(*b),
        Value::String(s) => s.trim().to_lowercase(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    if TRUE_STRINGS.contains(&text.as_str()) {
        Some(true)
    } else if FALSE_STRINGS.contains(&text.as_str()) {
        Some(false)
    } else {
        None
    }
}

/// nova's `utils.is_physical_function`: the device exists and has VFs possible.
fn is_physical_function(root: &SysRoot, addr: &str) -> bool {
    let dir = format!("sys/bus/pci/devices/{addr}");
    root.is_dir(&dir)
        && root
            .read_trimmed(&format!("{dir}/sriov_totalvfs"))
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .is_some_and(|n| n > 0)
}

/// nova's `get_function_by_ifname`: the netdev's PCI address and whether it is a PF.
fn function_by_ifname(root: &SysRoot, ifname: &str) -> Option<(String, bool)> {
    if ifname.contains('/') {
        return None;
    }
    let dev = format!("sys/class/net/{ifname}/device");
    if !root.is_dir(&dev) {
        return None;
    }
    let addr = root.link_name(&dev).ok()?;
    let is_pf = root
        .read_trimmed(&format!("{dev}/sriov_totalvfs"))
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .is_some_and(|n| n > 0);
    Some((addr, is_pf))
}

/// A device as the matcher sees it.
#[derive(Debug, Clone)]
pub struct PciDeviceFacts<'a> {
    /// 4 lowercase hex digits.
    pub vendor_id: &'a str,
    /// 4 lowercase hex digits.
    pub product_id: &'a str,
    /// `dddd:bb:ss.f`.
    pub address: &'a str,
    /// The PF's address for a VF.
    pub parent_addr: Option<&'a str>,
    /// The card serial number from PCI VPD, if any.
    pub card_serial_number: Option<&'a str>,
}

/// One parsed device spec (nova's `PciDeviceSpec`).
#[derive(Debug, Clone)]
pub struct PciDeviceSpec {
    /// `vendor_id`, normalised, or `*`.
    pub vendor_id: String,
    /// `product_id`, normalised, or `*`.
    pub product_id: String,
    /// `devname`, when the spec names a netdev.
    pub devname: Option<String>,
    /// The address matcher; `None` when `devname` names no netdev on this host.
    pub address: Option<WhitelistAddress>,
    /// Every other key (physical_network, trusted, remote_managed, ...).
    pub tags: BTreeMap<String, Value>,
    /// The `remote_managed` tag as a boolean.
    pub remote_managed: bool,
}

/// Options of `[pci]` that change how specs are validated.
#[derive(Debug, Clone, Copy, Default)]
pub struct SpecOptions {
    /// `[pci] report_in_placement` (nova default: false).
    pub report_in_placement: bool,
}

impl PciDeviceSpec {
    /// Build a spec from one JSON object, looking at `root` for PFs and netdevs.
    pub fn from_object(
        obj: &serde_json::Map<String, Value>,
        root: &SysRoot,
        opts: SpecOptions,
    ) -> Result<Self, PciSpecError> {
        let mut tags: BTreeMap<String, Value> =
            obj.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let vendor_id = match tags.remove("vendor_id") {
            None => ANY.to_string(),
            Some(Value::String(s)) => hex_field("vendor_id", s.trim(), MAX_VENDOR_ID, 4)?,
            Some(other) => {
                return Err(PciSpecError::NotString {
                    property: "vendor_id",
                    found: other.to_string(),
                })
            }
        };
        let product_id = match tags.remove("product_id") {
            None => ANY.to_string(),
            Some(Value::String(s)) => hex_field("product_id", &s, MAX_PRODUCT_ID, 4)?,
            Some(other) => {
                return Err(PciSpecError::NotString {
                    property: "product_id",
                    found: other.to_string(),
                })
            }
        };
        let devname = match tags.remove("devname") {
            Some(v) if !truthy(&v) => None,
            None => None,
            Some(Value::String(s)) => Some(s),
            Some(other) => {
                return Err(PciSpecError::NotString {
                    property: "devname",
                    found: other.to_string(),
                })
            }
        };
        let address = tags.remove("address").filter(truthy);
        if address.is_some() && devname.is_some() {
            return Err(PciSpecError::DevnameWithAddress);
        }
        let address = match &devname {
            Some(name) => match function_by_ifname(root, name) {
                Some((addr, is_pf)) => {
                    Some(WhitelistAddress::new(&Value::String(addr), is_pf, root)?)
                }
                None => None,
            },
            None => {
                let addr = address.unwrap_or_else(|| Value::String("*:*:*.*".into()));
                Some(WhitelistAddress::new(&addr, false, root)?)
            }
        };
        let remote_managed = tags
            .get("remote_managed")
            .and_then(bool_from_value)
            .unwrap_or(false);
        for tag in ["managed", "live_migratable", "one_time_use"] {
            match tags.get(tag) {
                None | Some(Value::Null) => {}
                Some(v) => {
                    let b = bool_from_value(v).ok_or_else(|| PciSpecError::BadBoolTag {
                        tag,
                        value: match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        },
                    })?;
                    tags.insert(tag.to_string(), Value::String(b.to_string()));
                }
            }
        }
        if tags.get("one_time_use") == Some(&Value::String("true".into()))
            && !opts.report_in_placement
        {
            return Err(PciSpecError::OneTimeUseNeedsPlacement);
        }
        let spec = Self {
            vendor_id,
            product_id,
            devname,
            address,
            tags,
            remote_managed,
        };
        if spec.remote_managed {
            spec.check_remote_managed(root)?;
        }
        Ok(spec)
    }

    fn check_remote_managed(&self, root: &SysRoot) -> Result<(), PciSpecError> {
        let Some(address) = &self.address else {
            return Err(PciSpecError::RemoteManagedNotPresent);
        };
        if !address.is_physical_function {
            return Ok(());
        }
        let pf_addr = address.spec.fields().to_string();
        let dir = format!("sys/bus/pci/devices/{pf_addr}");
        let not_found = |what: String| PciSpecError::NotFoundById {
            address: pf_addr.clone(),
            what,
        };
        let vf_product_id = root
            .read_trimmed(&format!("{dir}/sriov_vf_device"))
            .map_err(|e| not_found(e.to_string()))?;
        let pf_vendor = root
            .read_trimmed(&format!("{dir}/vendor"))
            .map_err(|e| not_found(e.to_string()))?
            .replace("0x", "");
        let pf_product = root
            .read_trimmed(&format!("{dir}/device"))
            .map_err(|e| not_found(e.to_string()))?
            .replace("0x", "");
        let vendor_ok = self.vendor_id == ANY || self.vendor_id == pf_vendor;
        if self.product_id == vf_product_id && vendor_ok {
            Ok(())
        } else if (self.product_id == ANY || self.product_id == pf_product) && vendor_ok {
            Err(PciSpecError::RemoteManagedPf { address: pf_addr })
        } else {
            Err(PciSpecError::VfIdsMismatch {
                vendor_id: self.vendor_id.clone(),
                product_id: self.product_id.clone(),
                pf_addr,
            })
        }
    }

    /// Whether the device matches this spec (nova's `PciDeviceSpec.match`).
    pub fn matches(&self, dev: &PciDeviceFacts<'_>) -> bool {
        let Some(address) = &self.address else {
            return false;
        };
        let Ok(addr) = PciAddress::parse(dev.address) else {
            return false;
        };
        let parent = match dev.parent_addr.map(PciAddress::parse) {
            Some(Ok(p)) => Some(p),
            Some(Err(_)) => return false,
            None => None,
        };
        (self.vendor_id == ANY || self.vendor_id == dev.vendor_id)
            && (self.product_id == ANY || self.product_id == dev.product_id)
            && address.matches(&addr, parent.as_ref())
            && (!self.remote_managed || dev.card_serial_number.is_some_and(|s| !s.is_empty()))
    }

    /// The `physical_network` tag, when it is a string.
    pub fn physical_network(&self) -> Option<&str> {
        self.tags.get("physical_network").and_then(Value::as_str)
    }
}

/// All specs of `[pci] device_spec` (nova's `Whitelist`).
#[derive(Debug, Clone, Default)]
pub struct DeviceSpecs {
    pub specs: Vec<PciDeviceSpec>,
}

/// A spec that matched a device: which one and its tags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpecMatch {
    /// 0-based position among all parsed specs (a list entry counts each object).
    pub spec_index: usize,
    /// The `physical_network` tag, if any.
    pub physical_network: Option<String>,
    /// All tags of the spec.
    pub tags: BTreeMap<String, Value>,
}

impl DeviceSpecs {
    /// Parse every `device_spec` entry (each a JSON object or list of objects).
    pub fn parse(
        entries: &[String],
        root: &SysRoot,
        opts: SpecOptions,
    ) -> Result<Self, DeviceSpecError> {
        let mut specs = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            let err = |problem| DeviceSpecError {
                index: i + 1,
                entry: entry.clone(),
                problem,
            };
            let value: Value = serde_json::from_str(entry)
                .map_err(|e| err(PciSpecError::InvalidJson { why: e.to_string() }))?;
            let items = match value {
                Value::Object(_) => vec![value],
                Value::Array(items) => items,
                other => {
                    return Err(err(PciSpecError::NotListOrDict {
                        found: json_kind(&other).into(),
                    }))
                }
            };
            for item in items {
                let Value::Object(obj) = &item else {
                    return Err(err(PciSpecError::NotDict {
                        item: item.to_string(),
                    }));
                };
                specs.push(PciDeviceSpec::from_object(obj, root, opts).map_err(err)?);
            }
        }
        Ok(Self { specs })
    }

    /// The first spec matching the device (nova's `device_assignable`).
    pub fn device_assignable(&self, dev: &PciDeviceFacts<'_>) -> Option<SpecMatch> {
        self.specs
            .iter()
            .enumerate()
            .find(|(_, s)| s.matches(dev))
            .map(|(spec_index, s)| SpecMatch {
                spec_index,
                physical_network: s.physical_network().map(str::to_string),
                tags: s.tags.clone(),
            })
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a dict",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> SysRoot {
        SysRoot::new("/nonexistent-novakvm-root")
    }

    fn one(json: &str) -> Result<PciDeviceSpec, PciSpecError> {
        DeviceSpecs::parse(&[json.to_string()], &root(), SpecOptions::default())
            .map(|mut s| s.specs.remove(0))
            .map_err(|e| e.problem)
    }

    fn dev<'a>(addr: &'a str, parent: Option<&'a str>) -> PciDeviceFacts<'a> {
        PciDeviceFacts {
            vendor_id: "8086",
            product_id: "154c",
            address: addr,
            parent_addr: parent,
            card_serial_number: None,
        }
    }

    #[test]
    fn glob_addresses() {
        let s = one(r#"{"address":"*:0a:00.*","physical_network":"physnet1"}"#).unwrap();
        assert!(s.matches(&dev("0000:0a:00.3", None)));
        assert!(!s.matches(&dev("0000:0b:00.3", None)));
        assert_eq!(s.physical_network(), Some("physnet1"));
        let s = one(r#"{"address":":0a:"}"#).unwrap();
        assert!(s.matches(&dev("0001:0a:1f.7", None)));
        let s = one(r#"{"address":"0x0a:00.1"}"#).unwrap();
        assert!(s.matches(&dev("abcd:0a:00.1", None)));
        assert!(!s.matches(&dev("abcd:0a:00.2", None)));
        let s = one(r#"{"address":"A:B:1.2"}"#).unwrap();
        assert!(s.matches(&dev("000a:0b:01.2", None)));
    }

    #[test]
    fn regex_addresses_match_at_start() {
        let s = one(r#"{"address":{"domain":".*","bus":"02","slot":"01","function":"[0-2]"},"physical_network":"net1"}"#)
            .unwrap();
        assert!(s.matches(&dev("0000:02:01.2", None)));
        assert!(!s.matches(&dev("0000:02:01.3", None)));
        // Python re.match anchors at the start only.
        let s = one(r#"{"address":{"bus":"0"}}"#).unwrap();
        assert!(s.matches(&dev("0000:05:00.0", None)));
        assert!(!s.matches(&dev("0000:50:00.0", None)));
    }

    #[test]
    fn vendor_and_product() {
        let s = one(r#"{"vendor_id":" 8086 ","product_id":"154C"}"#).unwrap();
        assert_eq!(
            (s.vendor_id.as_str(), s.product_id.as_str()),
            ("8086", "154c")
        );
        assert!(s.matches(&dev("0000:00:00.0", None)));
        let s = one(r#"{"vendor_id":"15b3"}"#).unwrap();
        assert!(!s.matches(&dev("0000:00:00.0", None)));
    }

    #[test]
    fn list_entries_and_tags() {
        let specs = DeviceSpecs::parse(
            &[
                r#"[{"vendor_id":"8086","trusted":"true"},{"address":"*:81:*.*","managed":"YES"}]"#
                    .into(),
            ],
            &root(),
            SpecOptions::default(),
        )
        .unwrap();
        assert_eq!(specs.specs.len(), 2);
        assert_eq!(specs.specs[1].tags["managed"], Value::String("true".into()));
        assert_eq!(specs.specs[0].tags["trusted"], Value::String("true".into()));
        let m = specs.device_assignable(&dev("0000:81:00.0", None)).unwrap();
        assert_eq!(m.spec_index, 0);
    }

    #[test]
    fn bad_specs_give_clear_errors() {
        let cases: &[(&str, &str)] = &[
            ("not json", "not valid JSON"),
            ("42", "Expecting list or dict"),
            (r#"["x"]"#, "Expecting dict"),
            (
                r#"{"address":"0000:81:00.0","devname":"eth0"}"#,
                "devname or address, but not both",
            ),
            (r#"{"address":"1:2:3:4.0"}"#, "incorrect format"),
            (r#"{"address":"*:*:*.8"}"#, "greater than the maximum"),
            (
                r#"{"address":"*:zz:*.*"}"#,
                "does not parse as a hex number",
            ),
            (r#"{"address":"*:*:*. "}"#, "does not parse as a hex number"),
            (r#"{"address":5}"#, "incorrect format"),
            (r#"{"address":{"bus":"("}}"#, "bad regular expression"),
            (r#"{"address":{"bus":2}}"#, "must be a string"),
            (r#"{"vendor_id":"10000"}"#, "greater than the maximum"),
            (r#"{"vendor_id":8086}"#, "must be a string"),
            (r#"{"product_id":"x"}"#, "does not parse as a hex number"),
            (r#"{"managed":"maybe"}"#, "Cannot parse tag 'managed'"),
            (r#"{"one_time_use":"yes"}"#, "report_in_placement"),
            (
                r#"{"devname":"nosuchdev","remote_managed":"true"}"#,
                "not actually present",
            ),
        ];
        for (spec, want) in cases {
            let e = one(spec).unwrap_err().to_string();
            assert!(e.contains(want), "{spec}: {e}");
        }
        let e = DeviceSpecs::parse(&["{}".into(), "{".into()], &root(), SpecOptions::default())
            .unwrap_err();
        assert_eq!(e.index, 2);
        assert!(
            e.to_string()
                .starts_with("Invalid [pci]device_spec config: entry 2"),
            "{e}"
        );
    }

    #[test]
    fn devname_absent_matches_nothing() {
        let s = one(r#"{"devname":"nosuchdev","physical_network":"p"}"#).unwrap();
        assert!(s.address.is_none());
        assert!(!s.matches(&dev("0000:81:00.0", None)));
    }

    #[test]
    fn falsy_address_means_any() {
        let s = one(r#"{"address":"","devname":""}"#).unwrap();
        assert!(s.matches(&dev("0000:81:00.0", None)));
    }

    #[test]
    fn python_hex_ints() {
        assert_eq!(py_int_hex("0x1F"), Some(31));
        assert_eq!(py_int_hex(" 1_f "), Some(31));
        assert_eq!(py_int_hex("0x_1"), Some(1));
        assert_eq!(py_int_hex("-1"), Some(-1));
        assert_eq!(py_int_hex(""), None);
        assert_eq!(py_int_hex("_1"), None);
        assert_eq!(py_int_hex("1__1"), None);
        assert_eq!(py_int_hex("fffffffffffffffffffff"), None);
        assert_eq!(hex_field("func", "-1", MAX_FUNC, 1).unwrap(), "-1");
        assert_eq!(hex_field("domain", "-1", MAX_DOMAIN, 4).unwrap(), "-001");
    }

    #[test]
    fn remote_managed_needs_serial() {
        let s = one(r#"{"vendor_id":"8086","remote_managed":"true"}"#).unwrap();
        let mut d = dev("0000:81:00.1", Some("0000:81:00.0"));
        assert!(!s.matches(&d));
        d.card_serial_number = Some("MT1234");
        assert!(s.matches(&d));
    }
}
