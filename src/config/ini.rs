//! An oslo.config-compatible INI reader, as a figment provider.
//!
//! It follows `oslo_config/iniparser.py`: `[section]` headers, `key = value` or
//! `key: value`, `#`/`;` comment lines, continuation lines that start with
//! white space (joined with a newline), matching quotes stripped. A key given
//! twice keeps its last value, except the multi-valued options in
//! [`MULTI_OPTS`], which collect every value as a list. Section names are
//! lowercased (`[DEFAULT]` becomes `default`) so they line up with the TOML
//! file and the environment.

use std::path::{Path, PathBuf};

use figment::value::{Dict, Map, Value};
use figment::{Error, Metadata, Profile, Provider};

/// Options that oslo defines as `MultiStrOpt`/multi `DictOpt`: every
/// occurrence counts.
pub const MULTI_OPTS: &[(&str, &str)] = &[
    ("pci", "device_spec"),
    ("pci", "alias"),
    ("compute", "reserved_huge_pages"),
];

/// A syntax error in an INI file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {what}")]
pub struct IniError {
    pub file: String,
    pub line: usize,
    pub what: String,
}

/// One parsed INI file: section -> option -> values, in file order.
pub type Sections = Vec<(String, Vec<(String, String)>)>;

/// Parse INI text the way oslo.config does.
pub fn parse(text: &str, file: &str) -> Result<Sections, IniError> {
    let mut sections: Sections = Vec::new();
    let mut pending: Option<(String, Vec<String>)> = None;
    let err = |line: usize, what: &str| IniError {
        file: file.to_string(),
        line,
        what: what.to_string(),
    };
    fn flush(sections: &mut Sections, pending: &mut Option<(String, Vec<String>)>) {
        if let Some((key, value)) = pending.take() {
            if let Some((_, opts)) = sections.last_mut() {
                opts.push((key, value.join("\n")));
            }
        }
    }
    for (idx, raw) in text.lines().enumerate() {
        let lineno = idx + 1;
        let line = raw.trim_end();
        if line.is_empty() {
            flush(&mut sections, &mut pending);
            continue;
        }
        if line.starts_with([' ', '\t']) {
            match pending.as_mut() {
                Some((_, value)) => value.push(line.trim_start().to_string()),
                None => return Err(err(lineno, "unexpected continuation line")),
            }
            continue;
        }
        flush(&mut sections, &mut pending);
        if let Some(rest) = line.strip_prefix('[') {
            let Some(name) = rest.strip_suffix(']') else {
                return Err(err(lineno, "invalid section (must end with ])"));
            };
            if name.is_empty() {
                return Err(err(lineno, "empty section name"));
            }
            sections.push((name.to_ascii_lowercase(), Vec::new()));
        } else if line.starts_with(['#', ';']) {
            continue;
        } else {
            let (key, value) = split_key_value(line)
                .ok_or_else(|| err(lineno, "no ':' or '=' found in assignment"))?;
            if key.is_empty() {
                return Err(err(lineno, "key cannot be empty"));
            }
            if sections.is_empty() {
                return Err(err(lineno, "assignment before any [section]"));
            }
            pending = Some((key, vec![value]));
        }
    }
    flush(&mut sections, &mut pending);
    Ok(sections)
}

fn split_key_value(line: &str) -> Option<(String, String)> {
    let colon = line.find(':');
    let equal = line.find('=');
    let at = match (colon, equal) {
        (None, None) => return None,
        (None, Some(e)) => e,
        (Some(c), None) => c,
        (Some(c), Some(e)) => e.min(c),
    };
    let key = line[..at].trim().to_string();
    let mut value = line[at + 1..].trim();
    if value.len() >= 2
        && (value.starts_with('"') || value.starts_with('\''))
        && value.as_bytes()[0] == value.as_bytes()[value.len() - 1]
    {
        value = &value[1..value.len() - 1];
    }
    Some((key, value.to_string()))
}

/// Turn parsed sections into a figment dictionary. Values stay strings;
/// the loader extracts with figment's lossy conversion, as oslo converts
/// strings to the option's type.
pub fn to_dict(sections: &Sections) -> Dict {
    let mut dict = Dict::new();
    for (section, opts) in sections {
        let entry = dict
            .entry(section.clone())
            .or_insert_with(|| Value::from(Dict::new()));
        let Value::Dict(_, table) = entry else {
            continue;
        };
        for (key, value) in opts {
            let multi = MULTI_OPTS.contains(&(section.as_str(), key.as_str()));
            if multi {
                let list = table
                    .entry(key.clone())
                    .or_insert_with(|| Value::from(Vec::<Value>::new()));
                if let Value::Array(_, items) = list {
                    items.push(Value::from(value.clone()));
                }
            } else {
                table.insert(key.clone(), Value::from(value.clone()));
            }
        }
    }
    dict
}

/// A figment provider for one oslo-style INI file.
#[derive(Debug, Clone)]
pub struct IniFile {
    path: PathBuf,
}

impl IniFile {
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
        }
    }
}

impl Provider for IniFile {
    fn metadata(&self) -> Metadata {
        Metadata::from(
            "nova.conf INI file",
            figment::Source::File(self.path.clone()),
        )
    }

    fn data(&self) -> Result<Map<Profile, Dict>, Error> {
        let name = self.path.display().to_string();
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| Error::from(format!("{name}: cannot read: {e}")))?;
        let sections = parse(&text, &name).map_err(|e| Error::from(e.to_string()))?;
        let mut map = Map::new();
        map.insert(Profile::Default, to_dict(&sections));
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_oslo_syntax() {
        let text = "# comment\n[DEFAULT]\nhost = cmp1\ntransport_url: rabbit://a:b@h:5672/\n\
                    quoted = \"x y\"\n\n[pci]\ndevice_spec = {\"address\": \"0000:3b:00.1\"}\n\
                    device_spec = {\"vendor_id\": \"8086\"}\n[compute]\nlong = a\n  b\n";
        let s = parse(text, "t.conf").unwrap();
        assert_eq!(s[0].0, "default");
        assert_eq!(s[0].1[0], ("host".into(), "cmp1".into()));
        assert_eq!(s[0].1[1].1, "rabbit://a:b@h:5672/");
        assert_eq!(s[0].1[2].1, "x y");
        assert_eq!(s[2].1[0].1, "a\nb");
        let d = to_dict(&s);
        let pci = d["pci"].as_dict().unwrap();
        assert_eq!(pci["device_spec"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn reports_line_numbers() {
        let e = parse("[DEFAULT]\nnot an assignment\n", "x.conf").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.to_string().contains("x.conf:2"));
        assert!(parse("  leading\n", "y").is_err());
        assert!(parse("[DEFAULT\n", "y").is_err());
        assert!(parse("a = b\n", "y").is_err());
    }
}
