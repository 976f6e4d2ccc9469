//! Checks shared by both doors (REST bodies and WebSocket messages): strict
//! field parsing that names the offending field, terminal sizes, and the
//! client-supplied environment.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ApiError;

/// Terminal sizes outside 1..=1000 are refused.
pub const MAX_TERMINAL_DIM: u16 = 1000;
const MAX_ENV_VARS: usize = 64;
const MAX_ENV_KEY: usize = 128;
const MAX_ENV_VALUE: usize = 8 * 1024;

/// Deserializes `value` into `T`, with an error that names the offending
/// field. `what` names the thing parsed, e.g. `'create' message` or
/// `request body`.
pub fn fields<T: DeserializeOwned>(what: &str, value: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let detail = e.into_inner().to_string();
        if path == "." || path.is_empty() {
            ApiError::validation(format!("Invalid {what}: {detail}"))
        } else {
            ApiError::validation(format!("Invalid {what}: field '{path}': {detail}"))
        }
    })
}

pub fn check_dims(cols: u16, rows: u16) -> Result<(), ApiError> {
    for (name, v) in [("cols", cols), ("rows", rows)] {
        if v == 0 || v > MAX_TERMINAL_DIM {
            return Err(ApiError::validation(format!(
                "{name} must be between 1 and {MAX_TERMINAL_DIM}, got {v}"
            )));
        }
    }
    Ok(())
}

/// A terminal size where either dimension may be missing (the other then
/// takes its default, 80 columns or 24 rows); `None` when neither is given.
pub fn optional_dims(cols: Option<u16>, rows: Option<u16>) -> Result<Option<(u16, u16)>, ApiError> {
    if cols.is_none() && rows.is_none() {
        return Ok(None);
    }
    let size = (cols.unwrap_or(80), rows.unwrap_or(24));
    check_dims(size.0, size.1)?;
    Ok(Some(size))
}

/// The client's environment as `KEY=value` pairs: names of letters, digits
/// and `_` (not starting with a digit), bounded in number and size.
pub fn env_pairs(env: &BTreeMap<String, String>) -> Result<Vec<String>, ApiError> {
    if env.len() > MAX_ENV_VARS {
        return Err(ApiError::validation(format!(
            "env has {} variables; at most {MAX_ENV_VARS} are allowed",
            env.len()
        )));
    }
    env.iter()
        .map(|(k, v)| {
            let valid_key = !k.is_empty()
                && k.len() <= MAX_ENV_KEY
                && !k.starts_with(|c: char| c.is_ascii_digit())
                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid_key {
                let shown: String = k.chars().take(MAX_ENV_KEY).collect();
                return Err(ApiError::validation(format!(
                    "Invalid env variable name '{shown}': use letters, digits and '_', not starting with a digit"
                )));
            }
            if v.len() > MAX_ENV_VALUE || v.contains('\0') {
                return Err(ApiError::validation(format!(
                    "Invalid value for env variable '{k}': at most {MAX_ENV_VALUE} bytes and no NUL"
                )));
            }
            Ok(format!("{k}={v}"))
        })
        .collect()
}

pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_is_checked() {
        let ok = BTreeMap::from([
            ("NODE_ENV".to_string(), "dev".to_string()),
            ("_X1".to_string(), "".to_string()),
        ]);
        assert_eq!(env_pairs(&ok).unwrap(), vec!["NODE_ENV=dev", "_X1="]);
        for bad in ["1X", "A-B", "", "A=B", "A B"] {
            let e = env_pairs(&BTreeMap::from([(bad.to_string(), "v".to_string())])).unwrap_err();
            assert_eq!(e.name(), "ValidationError", "{bad}");
        }
        let nul = BTreeMap::from([("A".to_string(), "a\0b".to_string())]);
        assert!(env_pairs(&nul).is_err());
        let many: BTreeMap<String, String> =
            (0..65).map(|i| (format!("V{i}"), String::new())).collect();
        assert!(env_pairs(&many)
            .unwrap_err()
            .to_string()
            .contains("at most 64"));
    }

    #[test]
    fn a_missing_dimension_takes_its_default() {
        assert_eq!(optional_dims(None, None).unwrap(), None);
        assert_eq!(optional_dims(Some(120), None).unwrap(), Some((120, 24)));
        assert_eq!(optional_dims(None, Some(40)).unwrap(), Some((80, 40)));
        assert!(optional_dims(Some(0), None).is_err());
        assert!(optional_dims(None, Some(1001)).is_err());
    }
}
