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

    /// Parses `"2.8"`; `None` unless two decimal numbers separated by a dot.
    /// A third `.z` part is accepted and ignored, as oslo's serializer does.
    pub fn parse(s: &str) -> Option<Self> {
        let num = |t: &str| -> Option<u32> {
            if t.is_empty() || !t.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            t.parse().ok()
        };
        let mut parts = s.split('.');
        let major = num(parts.next()?)?;
        let minor = num(parts.next()?)?;
        if let Some(z) = parts.next() {
            num(z)?;
        }
        if parts.next().is_some() {
            return None;
        }
        Some(Self::new(major, minor))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_compare() {
        assert_eq!(ObjectVersion::parse("2.8"), Some(ObjectVersion::new(2, 8)));
        assert_eq!(
            ObjectVersion::parse("1.22.3"),
            Some(ObjectVersion::new(1, 22))
        );
        for bad in [
            "", "2", "2.", ".8", "2.8.", "2.8.1.1", "a.b", "-1.2", "1.+2", " 1.2",
        ] {
            assert_eq!(ObjectVersion::parse(bad), None, "{bad}");
        }
        let ours = ObjectVersion::new(1, 22);
        assert!(ObjectVersion::new(1, 3).readable_by(ours));
        assert!(ObjectVersion::new(1, 22).readable_by(ours));
        assert!(!ObjectVersion::new(1, 23).readable_by(ours));
        assert!(!ObjectVersion::new(2, 0).readable_by(ours));
        assert!(ObjectVersion::new(1, 10) > ObjectVersion::new(1, 9));
    }
}
