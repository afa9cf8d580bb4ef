//! Capacity and free space of the file system holding `instances_path`.
//!
//! Like nova's `get_fs_info`: total = f_frsize * f_blocks, free = f_frsize *
//! f_bavail, used = f_frsize * (f_blocks - f_bfree).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A problem measuring the instances file system.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("instances_path {path}: no existing parent directory to measure")]
    NoExistingParent { path: PathBuf },
    #[error("instances_path {path}: the path contains a NUL byte")]
    NulByte { path: PathBuf },
    #[error("statvfs({path}) failed: {source}")]
    Statvfs {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Space on the file system holding the instances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskInfo {
    /// The configured `instances_path`.
    pub instances_path: PathBuf,
    /// The path actually measured: `instances_path` or its nearest existing parent.
    pub measured_path: PathBuf,
    /// File system size in bytes.
    pub total_bytes: u64,
    /// Bytes available to unprivileged users.
    pub free_bytes: u64,
    /// Bytes in use.
    pub used_bytes: u64,
}

/// Measure the file system holding `instances_path` (which need not exist yet).
// The statvfs field types are u32 on some targets, u64 on others.
#[allow(clippy::useless_conversion)]
pub fn disk_info(instances_path: &Path) -> Result<DiskInfo, DiskError> {
    let measured = nearest_existing(instances_path).ok_or_else(|| DiskError::NoExistingParent {
        path: instances_path.to_path_buf(),
    })?;
    let st = statvfs(&measured)?;
    let frsize = u64::from(st.f_frsize);
    let blocks = u64::from(st.f_blocks);
    let bfree = u64::from(st.f_bfree);
    let bavail = u64::from(st.f_bavail);
    Ok(DiskInfo {
        instances_path: instances_path.to_path_buf(),
        measured_path: measured,
        total_bytes: frsize.saturating_mul(blocks),
        free_bytes: frsize.saturating_mul(bavail),
        used_bytes: frsize.saturating_mul(blocks.saturating_sub(bfree)),
    })
}

/// `path` if it exists, else its nearest existing ancestor. A relative path
/// is taken from the current directory.
fn nearest_existing(path: &Path) -> Option<PathBuf> {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(path)
    };
    absolute
        .ancestors()
        .find(|p| p.exists())
        .map(Path::to_path_buf)
}

fn statvfs(path: &Path) -> Result<libc::statvfs, DiskError> {
    let c_path = CString::new(path.as_os_str().as_bytes()).map_err(|_| DiskError::NulByte {
        path: path.to_path_buf(),
    })?;
    let mut out = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c_path` is a valid NUL-terminated string that outlives the
    // call, and `out` points to writable memory of the size of `struct statvfs`.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), out.as_mut_ptr()) };
    if rc != 0 {
        return Err(DiskError::Statvfs {
            path: path.to_path_buf(),
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: statvfs returned 0, so it filled in the whole struct.
    Ok(unsafe { out.assume_init() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_missing_path_through_parent() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("a/b/instances");
        let info = disk_info(&missing).unwrap();
        assert_eq!(info.measured_path, dir.path());
        assert!(info.total_bytes > 0);
        assert!(info.free_bytes <= info.total_bytes);
        assert!(info.used_bytes <= info.total_bytes);
    }

    #[test]
    fn nul_byte_is_an_error() {
        let p = PathBuf::from(std::ffi::OsStr::from_bytes(b"/tmp/a\0b"));
        assert!(matches!(statvfs(&p), Err(DiskError::NulByte { .. })));
        let e = statvfs(Path::new("/nonexistent/novakvm"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/novakvm"), "{e}");
    }
}
