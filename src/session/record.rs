//! What a session keeps in its container's name, so that a restarted server
//! gets it back: labels are fixed when a container is created, and its name
//! is the one thing about it that can change afterwards.
//!
//! - `studio-pool-SESSION`: a warm-pool container not handed out yet.
//! - `studio-live-SESSION[.OWNER][.port-PORT]`: a session container whose
//!   owner (a pooled one's; the others carry it in their label too) or
//!   preview port was recorded after creation.
//!
//! Owners are hex fingerprints and session ids are base64url, so neither
//! holds a `.`, and no owner starts with `port-`.

use crate::runtime::spec::{LIVE_NAME_PREFIX, POOL_NAME_PREFIX};
use crate::session::Owner;

const PORT_PART: &str = "port-";

pub fn pool_name(session_id: &str) -> String {
    format!("{POOL_NAME_PREFIX}{session_id}")
}

/// The name that records `owner` and the preview `port` of a session.
pub fn live_name(session_id: &str, owner: &Owner, port: Option<u16>) -> String {
    let mut name = format!("{LIVE_NAME_PREFIX}{session_id}");
    if let Some(o) = &owner.0 {
        name.push('.');
        name.push_str(o);
    }
    if let Some(p) = port {
        name.push_str(&format!(".{PORT_PART}{p}"));
    }
    name
}

/// What a live name says of `session_id`: `None` when `name` is not one of
/// its live names (a pool container still waiting, a foreign name).
pub fn parse_live_name(name: &str, session_id: &str) -> Option<(Owner, Option<u16>)> {
    let rest = name
        .strip_prefix(LIVE_NAME_PREFIX)?
        .strip_prefix(session_id)?;
    let mut owner = Owner(None);
    let mut port = None;
    for (i, part) in rest.split('.').enumerate() {
        match (i, part) {
            (0, "") => {}
            (0, _) => return None,
            (_, p) if p.starts_with(PORT_PART) => {
                port = Some(p[PORT_PART.len()..].parse().ok().filter(|p| *p != 0)?);
            }
            (1, o) if !o.is_empty() && port.is_none() => owner = Owner(Some(o.to_string())),
            _ => return None,
        }
    }
    Some((owner, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SID: &str = "session-AAAAAAAAAAAAAAAAAAAAAA";

    #[test]
    fn names_round_trip_the_owner_and_the_port() {
        let o = Owner(Some("0123abcd".into()));
        for (owner, port) in [
            (Owner(None), None),
            (o.clone(), None),
            (Owner(None), Some(5173)),
            (o.clone(), Some(8080)),
        ] {
            let name = live_name(SID, &owner, port);
            assert_eq!(parse_live_name(&name, SID), Some((owner, port)), "{name}");
        }
        assert_eq!(
            live_name(SID, &o, Some(3000)),
            "studio-live-session-AAAAAAAAAAAAAAAAAAAAAA.0123abcd.port-3000"
        );
    }

    #[test]
    fn other_names_say_nothing() {
        assert_eq!(parse_live_name(&pool_name(SID), SID), None);
        assert_eq!(parse_live_name("studio-live-session-other", SID), None);
        assert_eq!(parse_live_name("busy_easley", SID), None);
        let bad = [
            ".port-0",
            ".port-70000",
            ".port-x",
            ".a.b",
            ".port-80.a",
            "x",
        ];
        for suffix in bad {
            let name = format!("studio-live-{SID}{suffix}");
            assert_eq!(parse_live_name(&name, SID), None, "{name}");
        }
    }
}
