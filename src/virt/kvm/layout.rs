//! An instance's directory, `instances_path/<uuid>/`, as the libvirt driver
//! keeps it: the VM spec, disks, kernel and ramdisk, console log, control
//! socket, the VMM's pid and its exit status.

use std::path::{Path, PathBuf};

use uuid::Uuid;

/// The files of one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceDir {
    root: PathBuf,
}

impl InstanceDir {
    /// `instances_path/<uuid>`.
    pub fn new(instances_path: &Path, uuid: Uuid) -> Self {
        Self {
            root: instances_path.join(uuid.to_string()),
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The VM spec the VMM is started with.
    pub fn spec(&self) -> PathBuf {
        self.root.join("spec.json")
    }

    /// The root disk (raw).
    pub fn disk(&self) -> PathBuf {
        self.root.join("disk")
    }

    /// Ephemeral disk `n` (libvirt's `disk.eph<n>`).
    pub fn ephemeral(&self, n: usize) -> PathBuf {
        self.root.join(format!("disk.eph{n}"))
    }

    /// The swap disk.
    pub fn swap(&self) -> PathBuf {
        self.root.join("disk.swap")
    }

    /// The kernel of a direct kernel boot.
    pub fn kernel(&self) -> PathBuf {
        self.root.join("kernel")
    }

    /// The ramdisk of a direct kernel boot.
    pub fn ramdisk(&self) -> PathBuf {
        self.root.join("ramdisk")
    }

    /// The serial console log.
    pub fn console_log(&self) -> PathBuf {
        self.root.join("console.log")
    }

    /// The VMM's control socket.
    pub fn control_socket(&self) -> PathBuf {
        self.root.join("control.sock")
    }

    /// `<pid> <start time>` of the running VMM.
    pub fn pid_file(&self) -> PathBuf {
        self.root.join("vmm.pid")
    }

    /// The VMM's own log (its stderr).
    pub fn vmm_log(&self) -> PathBuf {
        self.root.join("vmm.log")
    }

    /// What the VMM writes when it ends (reason and exit code).
    pub fn status_file(&self) -> PathBuf {
        self.root.join("status.json")
    }

    /// Whether the instance exists on this host (its spec was written).
    pub fn exists(&self) -> bool {
        self.spec().is_file()
    }
}

/// The instances under `instances_path`: directories named by a uuid that
/// hold a spec (`_base` and stray entries are skipped).
pub fn list(instances_path: &Path) -> Vec<Uuid> {
    let Ok(rd) = std::fs::read_dir(instances_path) else {
        return Vec::new();
    };
    let mut v: Vec<Uuid> = rd
        .flatten()
        .filter_map(|e| Uuid::parse_str(&e.file_name().to_string_lossy()).ok())
        .filter(|u| InstanceDir::new(instances_path, *u).exists())
        .collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_instance_dirs_are_listed() {
        let d = tempfile::tempdir().unwrap();
        let a = Uuid::new_v4();
        let b = Uuid::new_v4();
        std::fs::create_dir_all(d.path().join("_base")).unwrap();
        std::fs::create_dir_all(d.path().join(b.to_string())).unwrap();
        let ia = InstanceDir::new(d.path(), a);
        std::fs::create_dir_all(ia.path()).unwrap();
        std::fs::write(ia.spec(), "{}").unwrap();
        assert_eq!(list(d.path()), vec![a]);
        assert!(list(&d.path().join("missing")).is_empty());
    }
}
