//! Object versions (`major.minor`) and the compatibility rule of
//! oslo.versionedobjects' `obj_class_from_name`.

use std::fmt;

/// A `major.minor` object version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectVersion {
    /// Major version: a change here is incompatible.
    pub major: u32,
    /// Minor version: newer minors only add things.
    pub minor: u32,
}

impl ObjectVersion {
    /// Builds a version.
    pub const fn new(major: u32, minor: u32) -> Self {
        Self { major, minor }
    }

    /// Parses `"2.8"`; `None` unless exactly two decimal numbers separated by a dot.
    pub fn parse(s: &str) -> Option<Self> {
        let (a, b) = s.split_once('.')?;
        let num = |t: &str| -> Option<u32> {
            if t.is_empty() || !t.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            t.parse().ok()
        };
        Some(Self::new(num(a)?, num(b)?))
    }

    /// True when data written at `self` can be read by a class at `ours`:
    /// same major and a minor no newer than ours (oslo's rule).
    pub fn readable_by(self, ours: ObjectVersion) -> bool {
        self.major == ours.major && self.minor <= ours.minor
    }
}

impl fmt::Display for ObjectVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}
