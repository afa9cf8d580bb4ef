//! JSON text exactly as Python's `json.dumps` writes it with default
//! arguments (what oslo's `jsonutils.dumps` uses): `", "` and `": "`
//! separators, `ensure_ascii` escapes (`\uXXXX`, surrogate pairs), keys in
//! insertion order and floats in Python `repr` form.

use std::io;

use serde::Serialize;
use serde_json::ser::Formatter;

/// Errors of the Python-compatible JSON writer.
#[derive(Debug, thiserror::Error)]
pub enum PyJsonError {
    #[error("cannot serialize to JSON: {0}")]
    Serialize(#[from] serde_json::Error),
    #[error("serialized JSON is not UTF-8")]
    Utf8,
}

/// Serialize `value` as Python's `json.dumps(value)` would.
pub fn dumps<T: Serialize + ?Sized>(value: &T) -> Result<String, PyJsonError> {
    let mut out = Vec::with_capacity(256);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    value.serialize(&mut ser)?;
    String::from_utf8(out).map_err(|_| PyJsonError::Utf8)
}

/// The `serde_json` formatter behind [`dumps`].
#[derive(Debug, Clone, Copy, Default)]
pub struct PythonFormatter;

impl Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        if fragment.is_ascii() {
            return w.write_all(fragment.as_bytes());
        }
        let mut buf = [0u16; 2];
        for c in fragment.chars() {
            if c.is_ascii() {
                w.write_all(&[c as u8])?;
            } else {
                for unit in c.encode_utf16(&mut buf) {
                    write!(w, "\\u{:04x}", unit)?;
                }
            }
        }
        Ok(())
    }

    fn write_f64<W: ?Sized + io::Write>(&mut self, w: &mut W, value: f64) -> io::Result<()> {
        w.write_all(python_float_repr(value).as_bytes())
    }

    fn write_f32<W: ?Sized + io::Write>(&mut self, w: &mut W, value: f32) -> io::Result<()> {
        w.write_all(python_float_repr(f64::from(value)).as_bytes())
    }
}

/// Python's `repr(float)`: shortest round-trip digits, exponent form when
/// the decimal exponent is < -4 or >= 16.
pub fn python_float_repr(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0.0" } else { "0.0" }.to_string();
    }
    // `{:e}` gives the shortest round-trip digits: d[.ddd]e[-]x
    let sci = format!("{v:e}");
    let (mantissa, exp) = match sci.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (sci.as_str(), 0),
    };
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    if (-4..16).contains(&exp) {
        let n = digits.len() as i32;
        if exp < 0 {
            let zeros = "0".repeat((-exp - 1) as usize);
            format!("{sign}0.{zeros}{digits}")
        } else if exp + 1 >= n {
            let zeros = "0".repeat((exp + 1 - n) as usize);
            format!("{sign}{digits}{zeros}.0")
        } else {
            let (int, frac) = digits.split_at((exp + 1) as usize);
            format!("{sign}{int}.{frac}")
        }
    } else {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{first}{frac}e{esign}{:02}", exp.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn separators_and_ascii() {
        let v = json!({"a": [1, 2], "b": "é€😀\n\"", "c": null, "d": true});
        assert_eq!(
            dumps(&v).unwrap(),
            r#"{"a": [1, 2], "b": "\u00e9\u20ac\ud83d\ude00\n\"", "c": null, "d": true}"#
        );
    }

    #[test]
    fn floats_like_python() {
        for (v, s) in [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (1e16, "1e+16"),
            (1.5e-7, "1.5e-07"),
            (123456.789, "123456.789"),
            (0.0001, "0.0001"),
            (-2.5, "-2.5"),
            (1e15, "1000000000000000.0"),
            (1.2345e100, "1.2345e+100"),
        ] {
            assert_eq!(python_float_repr(v), s, "{v}");
        }
    }
}
