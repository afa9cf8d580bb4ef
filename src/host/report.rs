//! Plain-text tables for `novakvm host inventory`.

use std::fmt::Write;

use super::cpuset::{format_cpu_spec, CpuSet};
use super::inventory::HostInventory;
use super::numa::NumaSource;

/// A table rendered with columns padded to their widest cell.
struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(header: &[&str]) -> Self {
        Self {
            rows: vec![header.iter().map(|h| h.to_string()).collect()],
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn render(&self, indent: &str, out: &mut String) {
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..cols)
            .map(|i| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(i))
                    .map(|c| c.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in &self.rows {
            let mut line = String::from(indent);
            for (i, cell) in row.iter().enumerate() {
                if i + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    let _ = write!(line, "{cell:<w$}  ", w = widths[i]);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".to_string(), T::to_string)
}

fn set(s: &CpuSet) -> String {
    if s.is_empty() {
        "-".to_string()
    } else {
        format_cpu_spec(s)
    }
}

/// `1048576` KiB -> `1 GiB`.
pub fn kib(v: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    let mut value = v as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value.fract() == 0.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn opt_kib(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_string(), kib)
}

/// The whole inventory as text tables.
pub fn render(inv: &HostInventory) -> String {
    let mut out = String::new();
    let c = &inv.cpu;
    let _ = writeln!(out, "Host inventory (root {})", inv.root.display());
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "CPU model: {} (vendor {})",
        c.model.as_deref().unwrap_or("unknown"),
        c.vendor.as_deref().unwrap_or("unknown")
    );
    let _ = writeln!(
        out,
        "Online CPUs: {}  sockets: {}  cores: {}  threads per core: {}",
        set(&c.online),
        c.sockets,
        c.cores,
        c.threads_per_core
    );
    let _ = writeln!(
        out,
        "CPU traits: {}",
        if c.traits.is_empty() {
            "-".to_string()
        } else {
            c.traits.join(" ")
        }
    );
    let _ = writeln!(out);
    let mut t = Table::new(&["CPU", "SOCKET", "CORE", "NODE", "SIBLINGS"]);
    for cpu in &c.cpus {
        t.row(vec![
            cpu.id.to_string(),
            opt(&cpu.socket),
            opt(&cpu.core),
            opt(&cpu.numa_node),
            set(&cpu.siblings),
        ]);
    }
    t.render("", &mut out);

    let _ = writeln!(out);
    let _ = writeln!(out, "CPU sets");
    let _ = writeln!(out, "  VCPU (shared):    {}", set(&inv.cpu_sets.vcpu));
    let _ = writeln!(out, "  PCPU (dedicated): {}", set(&inv.cpu_sets.pcpu));

    let _ = writeln!(out);
    let source = match inv.numa_source {
        NumaSource::Sysfs => "sysfs",
        NumaSource::SingleNodeFallback => "no NUMA in sysfs: single node from /proc/meminfo",
    };
    let _ = writeln!(out, "NUMA cells ({source})");
    let mut t = Table::new(&[
        "NODE",
        "SOCKET",
        "CPUS",
        "VCPU",
        "PCPU",
        "SIBLINGS",
        "MEM TOTAL",
        "MEM FREE",
    ]);
    for n in &inv.numa_nodes {
        let siblings: Vec<String> = n.siblings.iter().map(format_cpu_spec).collect();
        t.row(vec![
            n.id.to_string(),
            opt(&n.socket),
            set(&n.cpus),
            set(&n.cpuset),
            set(&n.pcpuset),
            if siblings.is_empty() {
                "-".into()
            } else {
                siblings.join(" ")
            },
            opt_kib(n.memory_total_kib),
            opt_kib(n.memory_free_kib),
        ]);
    }
    t.render("", &mut out);
    let _ = writeln!(out);
    let _ = writeln!(out, "Hugepages");
    let mut t = Table::new(&["NODE", "SIZE", "TOTAL", "FREE", "RESERVED"]);
    for n in &inv.numa_nodes {
        for h in &n.hugepages {
            t.row(vec![
                n.id.to_string(),
                kib(h.size_kib),
                h.total.to_string(),
                h.free.to_string(),
                h.reserved.to_string(),
            ]);
        }
    }
    if t.rows.len() == 1 {
        let _ = writeln!(out, "  none");
    } else {
        t.render("", &mut out);
    }

    let d = &inv.disk;
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Disk: instances_path {} (measured at {})",
        d.instances_path.display(),
        d.measured_path.display()
    );
    let _ = writeln!(
        out,
        "  total {}  free {}  used {}",
        kib(d.total_bytes / 1024),
        kib(d.free_bytes / 1024),
        kib(d.used_bytes / 1024)
    );

    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "SR-IOV ([pci] device_spec: {} specs)",
        inv.device_spec_count
    );
    if inv.sriov.is_empty() {
        let _ = writeln!(out, "  no physical functions");
    }
    for pf in &inv.sriov {
        let _ = writeln!(
            out,
            "PF {}  {}:{}  netdev {}  node {}  VFs {}/{}{}",
            pf.address,
            opt(&pf.vendor_id),
            opt(&pf.product_id),
            opt(&pf.netdev),
            opt(&pf.numa_node),
            opt(&pf.num_vfs),
            pf.total_vfs,
            match &pf.device_spec {
                Some(m) => format!(
                    "  device_spec #{} physnet {}",
                    m.spec_index,
                    opt(&m.physical_network)
                ),
                None => String::new(),
            }
        );
        if pf.vfs.is_empty() {
            continue;
        }
        let mut t = Table::new(&[
            "VF", "ADDRESS", "ID", "NETDEV", "NODE", "SPEC", "PHYSNET", "TAGS",
        ]);
        for vf in &pf.vfs {
            let (spec, physnet, tags) = match &vf.device_spec {
                Some(m) => (
                    format!("#{}", m.spec_index),
                    opt(&m.physical_network),
                    m.tags
                        .iter()
                        .filter(|(k, _)| k.as_str() != "physical_network")
                        .map(|(k, v)| {
                            format!(
                                "{k}={}",
                                v.as_str().map_or_else(|| v.to_string(), str::to_string)
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(","),
                ),
                None => ("-".into(), "-".into(), String::new()),
            };
            t.row(vec![
                vf.index.to_string(),
                vf.address.clone(),
                format!("{}:{}", opt(&vf.vendor_id), opt(&vf.product_id)),
                opt(&vf.netdev),
                opt(&vf.numa_node),
                spec,
                physnet,
                tags,
            ]);
        }
        t.render("  ", &mut out);
    }

    if !inv.warnings.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "Warnings");
        for w in &inv.warnings {
            let _ = writeln!(out, "  - {w}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(kib(2048), "2 MiB");
        assert_eq!(kib(1048576), "1 GiB");
        assert_eq!(kib(1536), "1.5 MiB");
        assert_eq!(kib(0), "0 KiB");
    }

    #[test]
    fn tables_align() {
        let mut t = Table::new(&["A", "BB"]);
        t.row(vec!["long".into(), "x".into()]);
        let mut s = String::new();
        t.render("", &mut s);
        assert_eq!(s, "A     BB\nlong  x\n");
    }
}
