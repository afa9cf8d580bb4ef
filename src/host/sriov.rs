//! SR-IOV physical functions and their virtual functions, from
//! `sys/bus/pci/devices`, each with the `[pci] device_spec` that claims it.

use serde::{Deserialize, Serialize};

use super::pci_spec::{DeviceSpecs, PciDeviceFacts, SpecMatch};
use super::sysfs::{SysRoot, SysfsError};

/// Where PCI devices are listed.
pub const PCI_DEVICES: &str = "sys/bus/pci/devices";

/// A problem listing PCI devices.
#[derive(Debug, thiserror::Error)]
pub enum SriovError {
    #[error("cannot list PCI devices: {0}")]
    List(#[source] SysfsError),
}

/// One virtual function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VirtualFunction {
    /// N of the PF's `virtfnN` link.
    pub index: u32,
    /// PCI address (`0000:81:00.1`).
    pub address: String,
    /// Vendor id (4 hex digits), if readable.
    pub vendor_id: Option<String>,
    /// Product (device) id (4 hex digits), if readable.
    pub product_id: Option<String>,
    /// Network interface name, if the VF has one.
    pub netdev: Option<String>,
    /// NUMA node, if the kernel knows it.
    pub numa_node: Option<u32>,
    /// The device spec that makes it assignable, if any.
    pub device_spec: Option<SpecMatch>,
}

/// One SR-IOV physical function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhysicalFunction {
    /// PCI address.
    pub address: String,
    /// Vendor id (4 hex digits), if readable.
    pub vendor_id: Option<String>,
    /// Product (device) id (4 hex digits), if readable.
    pub product_id: Option<String>,
    /// Network interface name, if any.
    pub netdev: Option<String>,
    /// NUMA node, if the kernel knows it.
    pub numa_node: Option<u32>,
    /// `sriov_totalvfs`.
    pub total_vfs: u32,
    /// `sriov_numvfs` (VFs enabled now), if readable.
    pub num_vfs: Option<u32>,
    /// The device spec that matches the PF itself, if any.
    pub device_spec: Option<SpecMatch>,
    /// Enabled VFs, by index.
    pub vfs: Vec<VirtualFunction>,
}

/// Identity of one PCI device read from its sysfs directory.
struct DeviceIds {
    vendor_id: Option<String>,
    product_id: Option<String>,
    netdev: Option<String>,
    numa_node: Option<u32>,
    serial: Option<String>,
}

fn read_ids(root: &SysRoot, dir: &str, warnings: &mut Vec<String>) -> DeviceIds {
    let mut id = |file: &str| match root.read_pci_id(&format!("{dir}/{file}")) {
        Ok(v) => Some(v),
        Err(e) => {
            warnings.push(e.to_string());
            None
        }
    };
    let vendor_id = id("vendor");
    let product_id = id("device");
    let netdev = root
        .list(&format!("{dir}/net"))
        .ok()
        .and_then(|n| n.into_iter().next());
    let numa_node = match root.read_i64(&format!("{dir}/numa_node")) {
        Ok(n) => u32::try_from(n).ok(),
        Err(e) if e.is_not_found() => None,
        Err(e) => {
            warnings.push(e.to_string());
            None
        }
    };
    let serial = root
        .read_bytes(&format!("{dir}/vpd"))
        .ok()
        .and_then(|b| vpd_serial_number(&b));
    DeviceIds {
        vendor_id,
        product_id,
        netdev,
        numa_node,
        serial,
    }
}

fn spec_match(
    specs: &DeviceSpecs,
    ids: &DeviceIds,
    address: &str,
    parent: Option<&str>,
) -> Option<SpecMatch> {
    let facts = PciDeviceFacts {
        vendor_id: ids.vendor_id.as_deref()?,
        product_id: ids.product_id.as_deref()?,
        address,
        parent_addr: parent,
        card_serial_number: ids.serial.as_deref(),
    };
    specs.device_assignable(&facts)
}

/// Read every PF (a device with `sriov_totalvfs` > 0) and its VFs. A host
/// without `sys/bus/pci/devices` has none; single unreadable files become warnings.
pub fn read_sriov(
    root: &SysRoot,
    specs: &DeviceSpecs,
    warnings: &mut Vec<String>,
) -> Result<Vec<PhysicalFunction>, SriovError> {
    let devices = match root.list(PCI_DEVICES) {
        Ok(d) => d,
        Err(e) if e.is_not_found() => {
            warnings.push(format!(
                "{}: not present; no SR-IOV devices reported",
                root.path(PCI_DEVICES).display()
            ));
            return Ok(Vec::new());
        }
        Err(e) => return Err(SriovError::List(e)),
    };
    let mut pfs = Vec::new();
    for address in devices {
        let dir = format!("{PCI_DEVICES}/{address}");
        let total_vfs = match root.read_u64(&format!("{dir}/sriov_totalvfs")) {
            Ok(0) => continue,
            Ok(n) => u32::try_from(n).unwrap_or(u32::MAX),
            Err(e) if e.is_not_found() => continue,
            Err(e) => {
                warnings.push(format!("PCI device {address} skipped: {e}"));
                continue;
            }
        };
        let num_vfs = match root.read_u64(&format!("{dir}/sriov_numvfs")) {
            Ok(n) => Some(u32::try_from(n).unwrap_or(u32::MAX)),
            Err(e) => {
                warnings.push(e.to_string());
                None
            }
        };
        let ids = read_ids(root, &dir, warnings);
        let device_spec = spec_match(specs, &ids, &address, None);
        let vfs = read_vfs(root, &address, specs, warnings);
        if let Some(n) = num_vfs {
            if n as usize != vfs.len() {
                warnings.push(format!(
                    "PF {address}: sriov_numvfs is {n} but {} VFs were found",
                    vfs.len()
                ));
            }
        }
        pfs.push(PhysicalFunction {
            address,
            vendor_id: ids.vendor_id,
            product_id: ids.product_id,
            netdev: ids.netdev,
            numa_node: ids.numa_node,
            total_vfs,
            num_vfs,
            device_spec,
            vfs,
        });
    }
    Ok(pfs)
}

fn read_vfs(
    root: &SysRoot,
    pf: &str,
    specs: &DeviceSpecs,
    warnings: &mut Vec<String>,
) -> Vec<VirtualFunction> {
    let pf_dir = format!("{PCI_DEVICES}/{pf}");
    let names = match root.list(&pf_dir) {
        Ok(n) => n,
        Err(e) => {
            warnings.push(e.to_string());
            return Vec::new();
        }
    };
    let mut vfs = Vec::new();
    for name in names {
        let Some(index) = name
            .strip_prefix("virtfn")
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let link = format!("{pf_dir}/{name}");
        let address = match root.link_name(&link) {
            Ok(a) => a,
            Err(e) => {
                warnings.push(format!("PF {pf}: {name} skipped: {e}"));
                continue;
            }
        };
        if !root.is_dir(&link) {
            warnings.push(format!(
                "PF {pf}: {name} points to {address}, which does not exist; skipped"
            ));
            continue;
        }
        let ids = read_ids(root, &link, warnings);
        let device_spec = spec_match(specs, &ids, &address, Some(pf));
        vfs.push(VirtualFunction {
            index,
            address,
            vendor_id: ids.vendor_id,
            product_id: ids.product_id,
            netdev: ids.netdev,
            numa_node: ids.numa_node,
            device_spec,
        });
    }
    vfs.sort_by_key(|v| v.index);
    vfs
}

/// The card serial number (`SN` keyword of the read-only section) from PCI
/// VPD bytes, as libvirt reports `card_serial_number`.
pub fn vpd_serial_number(vpd: &[u8]) -> Option<String> {
    let mut pos = 0usize;
    while pos < vpd.len() {
        let tag = vpd[pos];
        if tag & 0x80 == 0 {
            // Small resource: 0x78 is the end tag.
            let name = (tag >> 3) & 0x0f;
            if name == 0x0f {
                return None;
            }
            pos += 1 + usize::from(tag & 0x07);
            continue;
        }
        let len = usize::from(u16::from_le_bytes([*vpd.get(pos + 1)?, *vpd.get(pos + 2)?]));
        let body = vpd.get(pos + 3..pos + 3 + len)?;
        if tag & 0x7f == 0x10 {
            let mut k = 0usize;
            while k + 3 <= body.len() {
                let key = &body[k..k + 2];
                let klen = usize::from(body[k + 2]);
                let data = body.get(k + 3..k + 3 + klen)?;
                if key == b"SN" {
                    let sn = String::from_utf8_lossy(data)
                        .trim_matches(|c: char| c.is_whitespace() || c == '\0')
                        .to_string();
                    return Some(sn).filter(|s| !s.is_empty());
                }
                k += 3 + klen;
            }
        }
        pos += 3 + len;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vpd_serial() {
        let mut vpd = vec![0x82, 4, 0, b'N', b'I', b'C', b'!'];
        let fields = [
            b'P', b'N', 2, b'A', b'B', b'S', b'N', 6, b'M', b'T', b'1', b'2', b'3', b' ', b'R',
            b'V', 1, 0,
        ];
        vpd.extend([0x90, fields.len() as u8, 0]);
        vpd.extend(fields);
        vpd.push(0x78);
        assert_eq!(vpd_serial_number(&vpd).as_deref(), Some("MT123"));
        assert_eq!(vpd_serial_number(&[0x78]), None);
        assert_eq!(vpd_serial_number(&[0x90, 0xff, 0xff, 1]), None);
        assert_eq!(vpd_serial_number(&[]), None);
        assert_eq!(vpd_serial_number(&[0x90, 3, 0, b'S', b'N', 9]), None);
    }
}
