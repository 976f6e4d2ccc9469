//! The optional TOML file (`--config FILE`): the same settings as the flags,
//! read into raw text values that the settings' own parsers then read, so a
//! value means the same in the file as on the command line.
//!
//! Written by hand, so read leniently where that loses nothing: keys in
//! snake_case or kebab-case (`session_timeout`, `session-timeout`), a
//! repeatable setting as one string or a list, numbers and booleans with or
//! without quotes (`cpus = 0.5`, `session_timeout = 300` in seconds,
//! `trust_proxy = "yes"`). An unknown key is an error that names it, so a
//! typo never silently leaves a setting at its default.

use std::collections::HashMap;
use std::path::Path;

/// Raw values by flag name (`session-timeout`).
pub type FileValues = HashMap<String, Vec<String>>;

pub fn load(path: &Path, known: &[&str]) -> Result<FileValues, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
    parse(&text, known).map_err(|e| format!("invalid config file {}: {e}", path.display()))
}

/// `known`: the flag names a key may be.
pub fn parse(text: &str, known: &[&str]) -> Result<FileValues, String> {
    let table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut values = FileValues::new();
    for (key, value) in table {
        let flag = key.replace('_', "-");
        if !known.contains(&flag.as_str()) {
            return Err(format!(
                "unknown key '{key}'; known keys are the flags' names: {}",
                known.join(", ")
            ));
        }
        let raw = match value {
            toml::Value::Array(items) => items
                .into_iter()
                .map(|v| scalar(&key, v))
                .collect::<Result<Vec<_>, _>>()?,
            v => vec![scalar(&key, v)?],
        };
        values.insert(flag, raw);
    }
    Ok(values)
}

fn scalar(key: &str, v: toml::Value) -> Result<String, String> {
    match v {
        toml::Value::String(s) => Ok(s),
        toml::Value::Integer(n) => Ok(n.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        other => Err(format!(
            "'{key}': expected text, a number or a boolean, got {}",
            other.type_str()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[&str] = &[
        "session-timeout",
        "workspace-root",
        "allowed-image",
        "cpus",
        "trust-proxy",
    ];

    #[test]
    fn kebab_or_snake_one_or_many_text_or_number() {
        let f = parse(
            r#"
            session-timeout = 300
            workspace_root = "/srv/ws"
            allowed-image = ["node:*", "python:*"]
            cpus = 0.5
            trust-proxy = true
            "#,
            KNOWN,
        )
        .unwrap();
        assert_eq!(f["session-timeout"], ["300"]);
        assert_eq!(f["workspace-root"], ["/srv/ws"]);
        assert_eq!(f["allowed-image"], ["node:*", "python:*"]);
        assert_eq!(f["cpus"], ["0.5"]);
        assert_eq!(f["trust-proxy"], ["true"]);
    }

    #[test]
    fn unknown_keys_are_errors_that_name_them() {
        let e = parse("session_timeot = \"5m\"", KNOWN).unwrap_err();
        assert!(e.contains("session_timeot"), "{e}");
        let e = parse("cpus = { a = 1 }", KNOWN).unwrap_err();
        assert!(e.contains("cpus"), "{e}");
    }
}
