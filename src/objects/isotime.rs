//! Timestamps as oslo.versionedobjects' `DateTimeField` writes them
//! (`%Y-%m-%dT%H:%M:%SZ`, UTC) and reads them (`timeutils.parse_isotime`:
//! optional fraction, `Z` or a `±HH:MM` offset).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::ObjectError;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Formats a time the way nova puts it on the wire: `2026-11-28T22:35:07Z`
/// (whole seconds, UTC). Times before 1970 are clamped to the epoch.
pub fn format_isotime(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Parses an ISO 8601 timestamp as nova sends it. Accepts an optional
/// fraction and a `Z`, `±HH:MM` or `±HHMM` suffix (none means UTC).
pub fn parse_isotime(s: &str) -> Result<SystemTime, ObjectError> {
    let bad = |reason| ObjectError::BadTime {
        value: s.chars().take(64).collect(),
        reason,
    };
    let b = s.as_bytes();
    if b.len() < 19 || !s.is_ascii() {
        return Err(bad("too short or not ASCII"));
    }
    let num = |r: std::ops::Range<usize>| -> Result<i64, ObjectError> {
        let t = &s[r];
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad("expected digits"));
        }
        t.parse().map_err(|_| bad("expected digits"))
    };
    if b[4] != b'-'
        || b[7] != b'-'
        || (b[10] != b'T' && b[10] != b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad("expected YYYY-MM-DDTHH:MM:SS"));
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = match mo {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(bad("field out of range")),
    };
    if !(1..=month_days).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return Err(bad("field out of range"));
    }
    let mut rest = &s[19..];
    let mut nanos: u32 = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err(bad("empty fraction"));
        }
        let mut n: u32 = 0;
        for (i, c) in frac.bytes().take(9).take(digits).enumerate() {
            n += u32::from(c - b'0') * 10u32.pow(8 - i as u32);
        }
        nanos = n;
        rest = &frac[digits..];
    }
    let offset: i64 = match rest {
        "" | "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return Err(bad("bad zone suffix")),
            };
            let z = rest[1..].replace(':', "");
            if z.len() != 4 || !z.bytes().all(|c| c.is_ascii_digit()) {
                return Err(bad("bad zone offset"));
            }
            let zh: i64 = z[..2].parse().map_err(|_| bad("bad zone offset"))?;
            let zm: i64 = z[2..].parse().map_err(|_| bad("bad zone offset"))?;
            sign * (zh * 3600 + zm * 60)
        }
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset;
    if secs < 0 {
        return Err(bad("before 1970"));
    }
    Ok(UNIX_EPOCH + Duration::new(secs as u64, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_of_a_captured_timestamp() {
        let t = parse_isotime("2026-11-28T22:35:07Z").unwrap();
        assert_eq!(format_isotime(t), "2026-11-28T22:35:07Z");
        assert_eq!(
            t.duration_since(UNIX_EPOCH).unwrap().as_secs(),
            1_795_905_307
        );
    }

    #[test]
    fn fractions_and_offsets() {
        let a = parse_isotime("2026-11-28T22:35:07.842961").unwrap();
        let b = parse_isotime("2026-11-28T23:35:07.842961+01:00").unwrap();
        assert_eq!(a, b);
        assert_eq!(format_isotime(a), "2026-11-28T22:35:07Z");
        assert_eq!(format_isotime(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let leap = parse_isotime("2024-02-29T00:00:00Z").unwrap();
        assert_eq!(format_isotime(leap), "2024-02-29T00:00:00Z");
    }

    #[test]
    fn garbage_is_rejected() {
        for s in [
            "",
            "2026",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-11-28T24:00:00Z",
            "2026-11-28 22:35:07Q",
            "2026-11-28T22:35:07.Z",
            "2026-11-28T22:35:07+1",
            "abcd-ef-ghTij:kl:mnZ",
            "1969-12-31T23:59:59Z",
            "2026-11-28T22:35:07\u{e9}",
        ] {
            assert!(parse_isotime(s).is_err(), "{s}");
        }
    }
}
