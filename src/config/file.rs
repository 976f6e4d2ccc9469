//! The optional TOML file (`--config FILE`): the same settings as the flags.
//!
//! Written by hand, so read leniently where that loses nothing: keys in
//! snake_case or kebab-case (`session_timeout`, `session-timeout`), a
//! repeatable setting as one string or a list, numbers as numbers or text
//! (`cpus = 0.5`, `memory = 268435456`, `session_timeout = 300` in seconds),
//! booleans as `true` or `"yes"`. An unknown key is still an error, so that
//! a typo never silently leaves a setting at its default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default, deserialize_with = "text")]
    pub listen: Option<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub workspace_root: Option<Vec<String>>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub allowed_image: Option<Vec<String>>,
    #[serde(default, deserialize_with = "text")]
    pub default_image: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub session_timeout: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub heartbeat_interval: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub cleanup_interval: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub memory: Option<String>,
    #[serde(default, deserialize_with = "number")]
    pub cpus: Option<f64>,
    #[serde(default, deserialize_with = "number")]
    pub pids_limit: Option<i64>,
    #[serde(default, deserialize_with = "text")]
    pub shell: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub network: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub docker_host: Option<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub api_token: Option<Vec<String>>,
    #[serde(default, deserialize_with = "text")]
    pub api_tokens_file: Option<String>,
    #[serde(default, deserialize_with = "boolean")]
    pub trust_proxy: Option<bool>,
    #[serde(default, deserialize_with = "boolean")]
    pub insecure_no_auth: Option<bool>,
    #[serde(default, deserialize_with = "text")]
    pub preview_domain: Option<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub allowed_origin: Option<Vec<String>>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub allowed_host: Option<Vec<String>>,
    #[serde(default, deserialize_with = "text")]
    pub instance: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub rate_limit_general: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub rate_limit_container: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub rate_limit_preview: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub rate_limit_ws: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub rate_limit_auth: Option<String>,
    #[serde(default, deserialize_with = "number")]
    pub max_sessions_per_owner: Option<usize>,
    #[serde(default, deserialize_with = "number")]
    pub max_connections: Option<usize>,
    #[serde(default, deserialize_with = "text")]
    pub connection_idle_timeout: Option<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub cors_origin: Option<Vec<String>>,
    #[serde(default, deserialize_with = "number")]
    pub warm_pool: Option<usize>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub warm_pool_image: Option<Vec<String>>,
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<FileConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("invalid config file {}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<FileConfig, String> {
        let table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
        // kebab-case keys, as the flags are spelled, mean the same.
        let table: toml::Table = table
            .into_iter()
            .map(|(k, v)| (k.replace('-', "_"), v))
            .collect();
        FileConfig::deserialize(toml::Value::Table(table)).map_err(|e| e.to_string())
    }

    pub fn listen(&self) -> Result<Option<SocketAddr>, String> {
        self.listen
            .as_deref()
            .map(|l| {
                l.parse()
                    .map_err(|_| format!("invalid listen address {l:?} in the config file"))
            })
            .transpose()
    }

    pub fn workspace_roots(&self) -> Option<Vec<PathBuf>> {
        self.workspace_root
            .as_ref()
            .map(|v| v.iter().map(PathBuf::from).collect())
    }
}

/// A string, or a number or boolean written without quotes (as text).
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Scalar {
    fn into_text(self) -> String {
        match self {
            Scalar::Text(s) => s,
            Scalar::Int(n) => n.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Some(Scalar::deserialize(d)?.into_text()))
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(Scalar),
        Many(Vec<Scalar>),
    }
    Ok(Some(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s.into_text()],
        OneOrMany::Many(v) => v.into_iter().map(Scalar::into_text).collect(),
    }))
}

fn number<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: std::str::FromStr,
{
    let text = Scalar::deserialize(d)?.into_text();
    text.trim()
        .parse()
        .map(Some)
        .map_err(|_| de::Error::custom(format!("expected a number, got {text:?}")))
}

fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    let text = Scalar::deserialize(d)?.into_text();
    super::parse_bool(&text)
        .map(Some)
        .map_err(de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kebab_or_snake_one_or_many_text_or_number() {
        let f = FileConfig::parse(
            r#"
            session-timeout = 300
            workspace_root = "/srv/ws"
            allowed-image = ["node:*", "python:*"]
            cpus = "0.5"
            memory = 268435456
            pids_limit = "100"
            trust-proxy = "yes"
            insecure_no_auth = false
            listen = "127.0.0.1:4000"
            "#,
        )
        .unwrap();
        assert_eq!(f.session_timeout.as_deref(), Some("300"));
        assert_eq!(f.workspace_roots(), Some(vec![PathBuf::from("/srv/ws")]));
        assert_eq!(
            f.allowed_image,
            Some(vec!["node:*".to_string(), "python:*".to_string()])
        );
        assert_eq!(f.cpus, Some(0.5));
        assert_eq!(f.memory.as_deref(), Some("268435456"));
        assert_eq!(f.pids_limit, Some(100));
        assert_eq!(f.trust_proxy, Some(true));
        assert_eq!(f.insecure_no_auth, Some(false));
        assert_eq!(f.listen().unwrap(), Some("127.0.0.1:4000".parse().unwrap()));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors_that_name_them() {
        let e = FileConfig::parse("session_timeot = \"5m\"").unwrap_err();
        assert!(e.contains("session_timeot"), "{e}");
        let e = FileConfig::parse("cpus = \"lots\"").unwrap_err();
        assert!(e.contains("lots"), "{e}");
        let e = FileConfig::parse("trust_proxy = \"maybe\"").unwrap_err();
        assert!(e.contains("maybe"), "{e}");
        assert!(FileConfig::parse("listen = \"nowhere\"")
            .unwrap()
            .listen()
            .is_err());
    }
}
