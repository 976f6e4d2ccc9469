//! Reading setting values as people write them, on the command line, in
//! `STUDIO_*` variables and in the TOML file alike.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// `30m`, `1h 30m`, `500ms`; a bare number is seconds.
pub fn duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let d = match t.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            humantime::parse_duration(t).map_err(|e| format!("invalid duration {s:?}: {e}"))?
        }
    };
    if d.is_zero() {
        return Err(format!("invalid duration {s:?}: must be greater than zero"));
    }
    Ok(d)
}

/// `512m`, `1g`, `1048576`, `64k` (binary units, as Docker reads them).
pub fn bytes(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let n: u64 = num.parse().map_err(|_| format!("invalid size {s:?}"))?;
    n.checked_mul(mult)
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("invalid size {s:?}"))
}

/// `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off` (any case), as people
/// write switches in environment variables.
pub fn switch(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "y" | "on" => Ok(true),
        "false" | "0" | "no" | "n" | "off" | "" => Ok(false),
        _ => Err(format!(
            "invalid switch value {s:?}: use true or false (or 1/0, yes/no, on/off)"
        )),
    }
}

pub fn addr(s: &str) -> Result<SocketAddr, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("invalid address {s:?}: use IP:PORT, e.g. 127.0.0.1:3333"))
}

pub fn text(s: &str) -> Result<String, String> {
    Ok(s.to_string())
}

pub fn path(s: &str) -> Result<PathBuf, String> {
    Ok(PathBuf::from(s))
}

pub fn number<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("expected a number, got {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_number_of_seconds_is_a_duration() {
        assert_eq!(duration("300"), Ok(Duration::from_secs(300)));
        assert_eq!(duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert!(duration("0").is_err());
        assert!(duration("soon").is_err());
    }

    #[test]
    fn sizes_parse_in_binary_units() {
        assert_eq!(bytes("512m").unwrap(), 512 << 20);
        assert_eq!(bytes("1G").unwrap(), 1 << 30);
        assert_eq!(bytes("64kb").unwrap(), 64 << 10);
        assert!(bytes("lots").is_err());
        assert!(bytes("0").is_err());
    }

    #[test]
    fn switches_read_as_people_write_them() {
        for yes in ["true", "TRUE", "1", "yes", "on"] {
            assert_eq!(switch(yes), Ok(true), "{yes}");
        }
        for no in ["false", "0", "no", "off"] {
            assert_eq!(switch(no), Ok(false), "{no}");
        }
        assert!(switch("perhaps").is_err());
    }
}
