//! nova's CPU-set syntax (`0-3,^2,8`) and the shared (VCPU) / dedicated (PCPU) sets.
//!
//! [`parse_cpu_spec`] follows `nova.virt.hardware.parse_cpu_spec`, and
//! [`format_cpu_spec`] its `format_cpu_spec`. [`CpuAllocation::derive`] follows
//! the libvirt driver's `_check_cpu_set_configuration`, `_get_vcpu_available`,
//! `_get_pcpu_available` and the per-cell logic of `_get_host_numa_topology`.

use std::collections::BTreeSet;

/// A set of host CPU ids.
pub type CpuSet = BTreeSet<u32>;

/// Highest CPU id accepted (nova has no limit; Linux supports at most 8192 CPUs,
/// and a bound keeps `0-99999999999` from exhausting memory).
pub const MAX_CPU_ID: u32 = 65535;

/// A CPU-set problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CpuSetError {
    #[error("invalid range expression {rule:?} in CPU set {spec:?}: {why}")]
    Range {
        spec: String,
        rule: String,
        why: String,
    },
    #[error("invalid exclusion expression {rule:?} in CPU set {spec:?}: {why}")]
    Exclusion {
        spec: String,
        rule: String,
        why: String,
    },
    #[error("invalid inclusion expression {rule:?} in CPU set {spec:?}: {why}")]
    Inclusion {
        spec: String,
        rule: String,
        why: String,
    },
    #[error("no CPUs available after parsing '{option}' config, {spec:?}")]
    Empty { option: &'static str, spec: String },
    #[error("the '[compute] cpu_dedicated_set' and '[compute] cpu_shared_set' configuration options must be disjoint; both contain {overlap}")]
    Overlap { overlap: String },
    #[error("the 'reserved_host_cpus' config option ({0}) cannot be defined alongside the '[compute] cpu_shared_set' or '[compute] cpu_dedicated_set' options; unset 'reserved_host_cpus'")]
    ReservedHostCpus(u32),
    #[error("invalid '{option}' config: CPU(s) {missing} not online; online CPUs: {online}, configured: {configured}")]
    NotOnline {
        option: &'static str,
        missing: String,
        online: String,
        configured: String,
    },
}

/// Parse a CPU-set specification such as `1-4,^3,6` into CPU ids.
///
/// Elements are separated by `,` (empty elements are skipped); each is a CPU
/// number, a range `a-b`, or an exclusion `^n` / `^a-b` applied after all
/// inclusions. Numbers follow Python's `int()` (surrounding spaces, a `+`
/// sign, `_` between digits); ids above [`MAX_CPU_ID`] are rejected.
pub fn parse_cpu_spec(spec: &str) -> Result<CpuSet, CpuSetError> {
    let mut include = CpuSet::new();
    let mut reject = CpuSet::new();
    for rule in spec.split(',') {
        let rule = rule.trim();
        if rule.is_empty() {
            continue;
        }
        if let Some((first, second)) = rule.split_once('-') {
            let range_err = |why: String| CpuSetError::Range {
                spec: spec.to_string(),
                rule: rule.to_string(),
                why,
            };
            let (is_reject, first) = match first.strip_prefix('^') {
                Some(rest) => (true, rest),
                None => (false, first),
            };
            let start = py_int(first.trim()).map_err(range_err)?;
            let end = py_int(second.trim()).map_err(range_err)?;
            if start > end {
                return Err(range_err(format!(
                    "start {start} is greater than end {end}"
                )));
            }
            let start = cpu_id(start).map_err(range_err)?;
            let end = cpu_id(end).map_err(range_err)?;
            let target = if is_reject { &mut reject } else { &mut include };
            target.extend(start..=end);
        } else if let Some(rest) = rule.strip_prefix('^') {
            let id =
                py_int(rest.trim())
                    .and_then(cpu_id)
                    .map_err(|why| CpuSetError::Exclusion {
                        spec: spec.to_string(),
                        rule: rule.to_string(),
                        why,
                    })?;
            reject.insert(id);
        } else {
            let id = py_int(rule)
                .and_then(cpu_id)
                .map_err(|why| CpuSetError::Inclusion {
                    spec: spec.to_string(),
                    rule: rule.to_string(),
                    why,
                })?;
            include.insert(id);
        }
    }
    Ok(&include - &reject)
}

/// Format CPU ids in nova's compact form: sorted, runs as `a-b`, joined by `,`.
pub fn format_cpu_spec(cpus: &CpuSet) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut run: Option<(u32, u32)> = None;
    for &cpu in cpus {
        run = match run {
            Some((start, end)) if end.checked_add(1) == Some(cpu) => Some((start, cpu)),
            Some(done) => {
                parts.push(format_run(done));
                Some((cpu, cpu))
            }
            None => Some((cpu, cpu)),
        };
    }
    if let Some(done) = run {
        parts.push(format_run(done));
    }
    parts.join(",")
}

fn format_run((start, end): (u32, u32)) -> String {
    if start == end {
        start.to_string()
    } else {
        format!("{start}-{end}")
    }
}

/// Python's `int(text)` for base 10, limited to what fits an `i64`.
fn py_int(text: &str) -> Result<i64, String> {
    let bad = || format!("{text:?} is not an integer");
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'+') => (false, &text[1..]),
        Some(b'-') => (true, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return Err(bad());
    }
    let mut value: i64 = 0;
    for c in digits.chars().filter(|&c| c != '_') {
        let d = c.to_digit(10).ok_or_else(bad)?;
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(d)))
            .ok_or_else(|| format!("{text:?} is too large"))?;
    }
    Ok(if negative { -value } else { value })
}

fn cpu_id(value: i64) -> Result<u32, String> {
    u32::try_from(value)
        .ok()
        .filter(|&v| v <= MAX_CPU_ID)
        .ok_or_else(|| format!("CPU id {value} is out of range 0-{MAX_CPU_ID}"))
}

/// The `[compute]`/`[DEFAULT]` options that decide the CPU sets.
#[derive(Debug, Clone, Default)]
pub struct CpuSetOptions {
    /// `[compute] cpu_shared_set`.
    pub shared: Option<String>,
    /// `[compute] cpu_dedicated_set`.
    pub dedicated: Option<String>,
    /// `[DEFAULT] reserved_host_cpus`.
    pub reserved_host_cpus: u32,
}

impl CpuSetOptions {
    /// The options from the novakvm configuration.
    pub fn from_config(cfg: &crate::config::Config) -> Self {
        Self {
            shared: cfg.compute.cpu_shared_set.clone(),
            dedicated: cfg.compute.cpu_dedicated_set.clone(),
            reserved_host_cpus: cfg.default.reserved_host_cpus,
        }
    }
}

/// Host CPUs for floating (VCPU) and pinned (PCPU) guests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuAllocation {
    /// CPUs reported as VCPU inventory (`_get_vcpu_available`).
    pub vcpu: CpuSet,
    /// CPUs reported as PCPU inventory (`_get_pcpu_available`).
    pub pcpu: CpuSet,
    /// CPUs NUMA cells offer for pinning (`pcpuset` of each cell): `pcpu`, or,
    /// as nova's legacy fallback, `vcpu` when neither `cpu_dedicated_set`
    /// nor `cpu_shared_set` is configured.
    pub cell_pcpu: CpuSet,
}

/// An option's value when nova treats it as set (a non-empty string).
fn configured(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|s| !s.is_empty())
}

fn parse_option(option: &'static str, value: &str) -> Result<CpuSet, CpuSetError> {
    let set = parse_cpu_spec(value)?;
    if set.is_empty() {
        return Err(CpuSetError::Empty {
            option,
            spec: value.to_string(),
        });
    }
    Ok(set)
}

const SHARED: &str = "[compute] cpu_shared_set";
const DEDICATED: &str = "[compute] cpu_dedicated_set";

impl CpuAllocation {
    /// Derive the sets from the options and the online CPUs, as nova does.
    pub fn derive(opts: &CpuSetOptions, online: &CpuSet) -> Result<Self, CpuSetError> {
        let shared = configured(&opts.shared)
            .map(|s| parse_option(SHARED, s))
            .transpose()?;
        let dedicated = configured(&opts.dedicated)
            .map(|s| parse_option(DEDICATED, s))
            .transpose()?;
        if shared.is_some() || dedicated.is_some() {
            if let (Some(s), Some(d)) = (&shared, &dedicated) {
                let overlap: CpuSet = s & d;
                if !overlap.is_empty() {
                    return Err(CpuSetError::Overlap {
                        overlap: format_cpu_spec(&overlap),
                    });
                }
            }
            if opts.reserved_host_cpus != 0 {
                return Err(CpuSetError::ReservedHostCpus(opts.reserved_host_cpus));
            }
        }
        let vcpu = match (&shared, &dedicated) {
            (Some(s), _) => {
                check_online(SHARED, s, online)?;
                s.clone()
            }
            (None, Some(_)) => CpuSet::new(),
            (None, None) => online.clone(),
        };
        let pcpu = match &dedicated {
            Some(d) => {
                check_online(DEDICATED, d, online)?;
                d.clone()
            }
            None => CpuSet::new(),
        };
        let cell_pcpu = if pcpu.is_empty() && shared.is_none() {
            vcpu.clone()
        } else {
            pcpu.clone()
        };
        Ok(Self {
            vcpu,
            pcpu,
            cell_pcpu,
        })
    }
}

fn check_online(option: &'static str, set: &CpuSet, online: &CpuSet) -> Result<(), CpuSetError> {
    let missing: CpuSet = set - online;
    if missing.is_empty() {
        return Ok(());
    }
    Err(CpuSetError::NotOnline {
        option,
        missing: format_cpu_spec(&missing),
        online: format_cpu_spec(online),
        configured: format_cpu_spec(set),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[u32]) -> CpuSet {
        ids.iter().copied().collect()
    }

    #[test]
    fn parses_like_nova() {
        assert_eq!(parse_cpu_spec("1-4,^3,6").unwrap(), set(&[1, 2, 4, 6]));
        assert_eq!(parse_cpu_spec("").unwrap(), set(&[]));
        assert_eq!(parse_cpu_spec(",,1,,").unwrap(), set(&[1]));
        assert_eq!(parse_cpu_spec(" 0 - 3 , ^ 1 ").unwrap(), set(&[0, 2, 3]));
        assert_eq!(parse_cpu_spec("0-5,^1-2").unwrap(), set(&[0, 3, 4, 5]));
        // Exclusions apply after all inclusions, whatever the order.
        assert_eq!(parse_cpu_spec("^2,0-3").unwrap(), set(&[0, 1, 3]));
        // Python int(): '+' sign and '_' separators.
        assert_eq!(parse_cpu_spec("+1,1_0").unwrap(), set(&[1, 10]));
        // "0--0" is a valid range for nova (int("-0") == 0).
        assert_eq!(parse_cpu_spec("0--0").unwrap(), set(&[0]));
    }

    #[test]
    fn rejects_garbage_with_nova_messages() {
        for (spec, kind) in [
            ("3-1", "range"),
            ("1-", "range"),
            ("-1", "range"),
            ("a-b", "range"),
            ("^-1", "range"),
            ("^x", "exclusion"),
            ("^", "exclusion"),
            ("x", "inclusion"),
            ("1 2", "inclusion"),
            ("1__0", "inclusion"),
            ("99999999999999999999999", "inclusion"),
            ("70000", "inclusion"),
            ("0-70000", "range"),
        ] {
            let e = parse_cpu_spec(spec).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("invalid {kind} expression")),
                "{spec}: {e}"
            );
        }
    }

    #[test]
    fn formats_compactly() {
        assert_eq!(format_cpu_spec(&set(&[])), "");
        assert_eq!(format_cpu_spec(&set(&[0, 1, 2, 3, 5, 7, 8])), "0-3,5,7-8");
        assert_eq!(
            format_cpu_spec(&set(&[u32::MAX - 1, u32::MAX])),
            format!("{}-{}", u32::MAX - 1, u32::MAX)
        );
    }

    fn opts(shared: Option<&str>, dedicated: Option<&str>) -> CpuSetOptions {
        CpuSetOptions {
            shared: shared.map(str::to_string),
            dedicated: dedicated.map(str::to_string),
            reserved_host_cpus: 0,
        }
    }

    #[test]
    fn derives_sets_as_libvirt_driver() {
        let online = set(&[0, 1, 2, 3, 4, 5, 6, 7]);
        let none = CpuAllocation::derive(&opts(None, None), &online).unwrap();
        assert_eq!(
            (none.vcpu.clone(), none.pcpu.clone()),
            (online.clone(), set(&[]))
        );
        assert_eq!(none.cell_pcpu, online);
        // An empty string is "unset" for nova.
        let empty = CpuAllocation::derive(&opts(Some(""), Some("")), &online).unwrap();
        assert_eq!(empty, none);

        let both = CpuAllocation::derive(&opts(Some("0-1"), Some("2-7")), &online).unwrap();
        assert_eq!(
            (both.vcpu, both.pcpu.clone()),
            (set(&[0, 1]), set(&[2, 3, 4, 5, 6, 7]))
        );
        assert_eq!(both.cell_pcpu, both.pcpu);

        let only_dedicated = CpuAllocation::derive(&opts(None, Some("4-7")), &online).unwrap();
        assert_eq!(only_dedicated.vcpu, set(&[]));
        assert_eq!(only_dedicated.pcpu, set(&[4, 5, 6, 7]));

        let only_shared = CpuAllocation::derive(&opts(Some("0-3"), None), &online).unwrap();
        assert_eq!(only_shared.vcpu, set(&[0, 1, 2, 3]));
        assert_eq!(only_shared.pcpu, set(&[]));
        assert_eq!(only_shared.cell_pcpu, set(&[]));
    }

    #[test]
    fn derive_errors_are_clear() {
        let online = set(&[0, 1, 2, 3]);
        let e = CpuAllocation::derive(&opts(Some("0-2"), Some("2-3")), &online).unwrap_err();
        assert_eq!(
            e,
            CpuSetError::Overlap {
                overlap: "2".into()
            }
        );
        let e = CpuAllocation::derive(&opts(None, Some("2-9")), &online)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cpu_dedicated_set") && e.contains("4-9 not online"),
            "{e}"
        );
        let e = CpuAllocation::derive(&opts(Some("0,8"), None), &online)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cpu_shared_set") && e.contains("8 not online"),
            "{e}"
        );
        let e = CpuAllocation::derive(&opts(Some("0-3,^0-3"), None), &online)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("No CPUs available") || e.contains("no CPUs available"),
            "{e}"
        );
        let e = CpuAllocation::derive(&opts(Some(" "), None), &online).unwrap_err();
        assert!(matches!(e, CpuSetError::Empty { .. }));
        let mut o = opts(Some("0"), None);
        o.reserved_host_cpus = 1;
        assert_eq!(
            CpuAllocation::derive(&o, &online).unwrap_err(),
            CpuSetError::ReservedHostCpus(1)
        );
        let e = CpuAllocation::derive(&opts(Some("zz"), None), &online)
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"zz\""), "{e}");
    }
}
