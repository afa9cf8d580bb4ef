//! Reading files below a sysfs/procfs root (`/` in production, a fixture tree in tests).

use std::path::{Path, PathBuf};

/// A problem reading one file or directory below the root.
#[derive(Debug, thiserror::Error)]
pub enum SysfsError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {what} (content: {content:?})")]
    Parse {
        path: PathBuf,
        what: String,
        content: String,
    },
}

impl SysfsError {
    /// Whether the file or directory simply does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, SysfsError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// The root directory that `sys/...` and `proc/...` are read from.
#[derive(Debug, Clone)]
pub struct SysRoot {
    root: PathBuf,
}

/// Longest content kept in a parse error message.
const MAX_SHOWN: usize = 80;

impl SysRoot {
    /// A root directory; `/` for the running host.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `rel` (like `sys/devices/system/cpu/online`) below the root.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel.trim_start_matches('/'))
    }

    /// Whether `rel` exists (following symlinks).
    pub fn exists(&self, rel: &str) -> bool {
        self.path(rel).exists()
    }

    /// Whether `rel` is a directory (following symlinks).
    pub fn is_dir(&self, rel: &str) -> bool {
        self.path(rel).is_dir()
    }

    /// The whole file as text (invalid UTF-8 replaced).
    pub fn read(&self, rel: &str) -> Result<String, SysfsError> {
        let path = self.path(rel);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
            Err(source) => Err(SysfsError::Io { path, source }),
        }
    }

    /// The whole file as bytes.
    pub fn read_bytes(&self, rel: &str) -> Result<Vec<u8>, SysfsError> {
        let path = self.path(rel);
        std::fs::read(&path).map_err(|source| SysfsError::Io { path, source })
    }

    /// The file's text with surrounding whitespace removed.
    pub fn read_trimmed(&self, rel: &str) -> Result<String, SysfsError> {
        self.read(rel).map(|s| s.trim().to_string())
    }

    /// The file parsed with `parse`; its error text goes into [`SysfsError::Parse`].
    pub fn read_parsed<T>(
        &self,
        rel: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, SysfsError> {
        let text = self.read_trimmed(rel)?;
        parse(&text).map_err(|what| self.parse_error(rel, what, &text))
    }

    /// A decimal unsigned number file (like `nr_hugepages`).
    pub fn read_u64(&self, rel: &str) -> Result<u64, SysfsError> {
        self.read_parsed(rel, |s| {
            s.parse::<u64>()
                .map_err(|_| "not an unsigned decimal number".to_string())
        })
    }

    /// A decimal signed number file (like `numa_node`, which may be `-1`).
    pub fn read_i64(&self, rel: &str) -> Result<i64, SysfsError> {
        self.read_parsed(rel, |s| {
            s.parse::<i64>()
                .map_err(|_| "not a decimal number".to_string())
        })
    }

    /// A hex id file such as `vendor` (`0x8086`), as 4 lowercase hex digits.
    pub fn read_pci_id(&self, rel: &str) -> Result<String, SysfsError> {
        self.read_parsed(rel, |s| {
            let digits = s.strip_prefix("0x").unwrap_or(s);
            u16::from_str_radix(digits, 16)
                .map(|v| format!("{v:04x}"))
                .map_err(|_| "not a 16-bit hex PCI id".to_string())
        })
    }

    /// The last path component a symlink points to (like a PCI address for `virtfn0`).
    pub fn link_name(&self, rel: &str) -> Result<String, SysfsError> {
        let path = self.path(rel);
        let target = std::fs::read_link(&path).map_err(|source| SysfsError::Io {
            path: path.clone(),
            source,
        })?;
        match target.file_name().and_then(|n| n.to_str()) {
            Some(name) => Ok(name.to_string()),
            None => Err(SysfsError::Parse {
                content: target.display().to_string(),
                path,
                what: "symlink target has no usable last component".to_string(),
            }),
        }
    }

    /// Names in a directory, sorted; non-UTF-8 names are skipped.
    pub fn list(&self, rel: &str) -> Result<Vec<String>, SysfsError> {
        let path = self.path(rel);
        let entries = std::fs::read_dir(&path).map_err(|source| SysfsError::Io {
            path: path.clone(),
            source,
        })?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| SysfsError::Io {
                path: path.clone(),
                source,
            })?;
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// A parse error for `rel` showing (a bounded part of) its content.
    pub fn parse_error(&self, rel: &str, what: impl Into<String>, content: &str) -> SysfsError {
        let mut shown: String = content.chars().take(MAX_SHOWN).collect();
        if content.chars().count() > MAX_SHOWN {
            shown.push_str("...");
        }
        SysfsError::Parse {
            path: self.path(rel),
            what: what.into(),
            content: shown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_reports_paths() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sys/a")).unwrap();
        std::fs::write(dir.path().join("sys/a/n"), "42\n").unwrap();
        std::fs::write(dir.path().join("sys/a/bad"), "forty-two\n").unwrap();
        std::fs::write(dir.path().join("sys/a/vendor"), "0x8086\n").unwrap();
        let root = SysRoot::new(dir.path());
        assert_eq!(root.read_u64("/sys/a/n").unwrap(), 42);
        assert_eq!(root.read_pci_id("sys/a/vendor").unwrap(), "8086");
        let err = root.read_u64("sys/a/bad").unwrap_err().to_string();
        assert!(
            err.contains("sys/a/bad") && err.contains("forty-two"),
            "{err}"
        );
        let missing = root.read_u64("sys/a/none").unwrap_err();
        assert!(missing.is_not_found());
        assert!(missing.to_string().contains("sys/a/none"));
        assert_eq!(root.list("sys/a").unwrap(), vec!["bad", "n", "vendor"]);
    }

    #[test]
    fn long_garbage_is_shortened() {
        let root = SysRoot::new("/nonexistent");
        let e = root.parse_error("x", "bad", &"z".repeat(500)).to_string();
        assert!(e.len() < 250, "{e}");
    }
}
