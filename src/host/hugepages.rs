//! Hugepages per size, and the `[compute] reserved_huge_pages` reservations.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::sysfs::SysRoot;
use crate::config::parse_reserved_huge_pages;

/// A bad `reserved_huge_pages` entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HugePagesError {
    #[error("[compute] reserved_huge_pages entry {index} {entry:?}: {what}")]
    Reserved {
        index: usize,
        entry: String,
        what: String,
    },
}

/// Hugepages of one size on one NUMA node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HugePages {
    /// Page size in KiB (2048, 1048576, ...).
    pub size_kib: u64,
    /// `nr_hugepages`.
    pub total: u64,
    /// `free_hugepages`.
    pub free: u64,
    /// Pages reserved for the host by `[compute] reserved_huge_pages`.
    pub reserved: u64,
}

/// Reservations by (node, page size in KiB); a later entry for the same
/// pair replaces an earlier one, as in nova's `numa_get_reserved_huge_pages`.
pub type Reservations = BTreeMap<(u32, u64), u64>;

/// Parse all `reserved_huge_pages` entries.
pub fn parse_reservations(entries: &[String]) -> Result<Reservations, HugePagesError> {
    let mut out = Reservations::new();
    for (i, entry) in entries.iter().enumerate() {
        let r = parse_reserved_huge_pages(entry).map_err(|what| HugePagesError::Reserved {
            index: i + 1,
            entry: entry.clone(),
            what,
        })?;
        out.insert((r.node, r.size_kib), r.count);
    }
    Ok(out)
}

/// `hugepages-2048kB` -> 2048.
pub fn size_from_dir_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("hugepages-")?.strip_suffix("kB")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Read every `hugepages-<size>kB` directory under `dir` (like
/// `sys/devices/system/node/node0/hugepages`). A missing directory means no
/// hugepages; unreadable entries are skipped with a warning.
pub fn read_hugepages(root: &SysRoot, dir: &str, warnings: &mut Vec<String>) -> Vec<HugePages> {
    let names = match root.list(dir) {
        Ok(names) => names,
        Err(e) if e.is_not_found() => return Vec::new(),
        Err(e) => {
            warnings.push(format!("hugepages not reported: {e}"));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for name in names {
        let Some(size_kib) = size_from_dir_name(&name) else {
            warnings.push(format!(
                "{}: not a hugepages-<size>kB directory, ignored",
                root.path(&format!("{dir}/{name}")).display()
            ));
            continue;
        };
        let total = root.read_u64(&format!("{dir}/{name}/nr_hugepages"));
        let free = root.read_u64(&format!("{dir}/{name}/free_hugepages"));
        match (total, free) {
            (Ok(total), Ok(free)) => out.push(HugePages {
                size_kib,
                total,
                free,
                reserved: 0,
            }),
            (Err(e), _) | (_, Err(e)) => {
                warnings.push(format!("{size_kib} KiB hugepages not reported: {e}"));
            }
        }
    }
    out.sort_by_key(|h| h.size_kib);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_names() {
        assert_eq!(size_from_dir_name("hugepages-2048kB"), Some(2048));
        assert_eq!(size_from_dir_name("hugepages-1048576kB"), Some(1048576));
        assert_eq!(size_from_dir_name("hugepages-kB"), None);
        assert_eq!(size_from_dir_name("hugepages-2MB"), None);
        assert_eq!(
            size_from_dir_name("hugepages-99999999999999999999999kB"),
            None
        );
    }

    #[test]
    fn reservations_last_wins_and_errors_name_entry() {
        let r = parse_reservations(&[
            "node:0,size:2048,count:4".into(),
            "node:1,size:1GB,count:1".into(),
            "node:0,size:2048,count:8".into(),
        ])
        .unwrap();
        assert_eq!(r[&(0, 2048)], 8);
        assert_eq!(r[&(1, 1048576)], 1);
        let e = parse_reservations(&["node:0,size:2048".into(), "x".into()]).unwrap_err();
        assert!(e.to_string().contains("entry 1"), "{e}");
    }
}
