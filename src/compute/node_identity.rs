//! The node's stable identity: the `compute_id` file, as nova/virt/node.py
//! keeps it. Read from the directories of the config files and
//! `state_path`; all copies must agree; written (create-exclusive) into
//! `state_path` on first start only.

use std::io::Write;
use std::path::{Path, PathBuf};

use uuid::Uuid;

use super::error::ComputeError;

/// The file name nova uses.
pub const COMPUTE_ID_FILE: &str = "compute_id";

/// `nova.objects.service.NODE_IDENTITY_VERSION`: services at this version or
/// newer must already have a `compute_id` file when their record exists.
pub const NODE_IDENTITY_VERSION: i64 = 61;

/// Reads the node uuid (nova's `read_local_node_uuid`): `None` when no file
/// exists; an error when one cannot be parsed or two disagree.
pub fn read(locations: &[PathBuf]) -> Result<Option<Uuid>, ComputeError> {
    let mut found: Vec<(Uuid, PathBuf)> = Vec::new();
    for dir in locations {
        let path = dir.join(COMPUTE_ID_FILE);
        let content = match std::fs::read(&path) {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(ComputeError::InvalidNodeConfiguration(format!(
                    "Unable to read {}: {e}",
                    path.display()
                )))
            }
        };
        // nova reads 40 characters and strips whitespace.
        let head = &content[..content.len().min(40)];
        let text = String::from_utf8_lossy(head);
        let uuid = Uuid::parse_str(text.trim()).map_err(|_| {
            ComputeError::InvalidNodeConfiguration(format!(
                "Unable to parse UUID from {}",
                path.display()
            ))
        })?;
        if let Some((first, first_path)) = found.first() {
            if *first != uuid {
                return Err(ComputeError::InvalidNodeConfiguration(format!(
                    "UUID {uuid} in {} does not match {first} in {}",
                    path.display(),
                    first_path.display()
                )));
            }
        }
        found.push((uuid, path));
    }
    Ok(found.first().map(|(u, p)| {
        tracing::info!(node = %u, file = %p.display(), "determined node identity");
        *u
    }))
}

/// Writes a new identity into `state_path/compute_id`; fails if the file
/// appeared meanwhile (nova's `write_local_node_uuid`).
pub fn write(state_path: &Path, uuid: Uuid) -> Result<(), ComputeError> {
    let path = state_path.join(COMPUTE_ID_FILE);
    std::fs::create_dir_all(state_path).map_err(|e| {
        ComputeError::InvalidNodeConfiguration(format!(
            "Unable to write uuid to {}: {e}",
            path.display()
        ))
    })?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                ComputeError::InvalidNodeConfiguration(format!(
                    "Identity file {} appeared unexpectedly",
                    path.display()
                ))
            } else {
                ComputeError::InvalidNodeConfiguration(format!(
                    "Unable to write uuid to {}: {e}",
                    path.display()
                ))
            }
        })?;
    f.write_all(uuid.hyphenated().to_string().as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| {
            ComputeError::InvalidNodeConfiguration(format!(
                "Unable to write uuid to {}: {e}",
                path.display()
            ))
        })?;
    tracing::info!(node = %uuid, file = %path.display(), "wrote node identity");
    Ok(())
}

/// The node uuid at start (nova's `get_local_node_uuid` plus
/// `_ensure_existing_node_identity`): an existing file wins; without one, a
/// service record at version >= 61 means state was lost (refuse); otherwise
/// a new uuid is generated and written.
pub fn ensure(
    locations: &[PathBuf],
    state_path: &Path,
    existing_service_version: Option<i64>,
) -> Result<Uuid, ComputeError> {
    if let Some(u) = read(locations)? {
        return Ok(u);
    }
    if let Some(v) = existing_service_version {
        if v >= NODE_IDENTITY_VERSION {
            return Err(ComputeError::InvalidConfiguration(
                "No local node identity found, but this is not our first startup on this host. \
                 Refusing to start after potentially having lost that state!"
                    .into(),
            ));
        }
    }
    let u = Uuid::new_v4();
    tracing::info!(node = %u, "generated node identity");
    write(state_path, u)?;
    Ok(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_start_writes_and_restart_reads() {
        let d = tempfile::tempdir().unwrap();
        let locs = vec![d.path().to_path_buf()];
        let u = ensure(&locs, d.path(), None).unwrap();
        assert_eq!(ensure(&locs, d.path(), Some(74)).unwrap(), u);
        assert!(write(d.path(), Uuid::new_v4()).is_err());
    }

    #[test]
    fn lost_identity_with_existing_service_refuses() {
        let d = tempfile::tempdir().unwrap();
        let e = ensure(&[d.path().to_path_buf()], d.path(), Some(74)).unwrap_err();
        assert!(e.to_string().contains("Refusing to start"), "{e}");
    }

    #[test]
    fn garbage_and_disagreement_are_errors() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        std::fs::write(a.path().join(COMPUTE_ID_FILE), "not-a-uuid\n").unwrap();
        assert!(read(&[a.path().to_path_buf()]).is_err());
        std::fs::write(
            a.path().join(COMPUTE_ID_FILE),
            format!(" {}\n", Uuid::new_v4()),
        )
        .unwrap();
        std::fs::write(b.path().join(COMPUTE_ID_FILE), Uuid::new_v4().to_string()).unwrap();
        let e = read(&[a.path().to_path_buf(), b.path().to_path_buf()]).unwrap_err();
        assert!(e.to_string().contains("does not match"), "{e}");
        std::fs::write(a.path().join(COMPUTE_ID_FILE), [0xff, 0xfe, 0x00]).unwrap();
        assert!(read(&[a.path().to_path_buf()]).is_err());
    }
}
