//! Session ids: `session-` and 128 bits from a CSPRNG (rand's ChaCha-based
//! thread generator, seeded by the OS), base64url.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;

pub const PREFIX: &str = "session-";
/// 16 random bytes encode to 22 base64url characters.
const RANDOM_BYTES: usize = 16;

pub fn new_session_id() -> String {
    let mut bytes = [0u8; RANDOM_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Whether `s` has the shape of an id this server makes. Ids from labels of
/// re-adopted containers are checked with this before they are trusted.
pub fn is_well_formed(s: &str) -> bool {
    s.strip_prefix(PREFIX).is_some_and(|rest| {
        (22..=64).contains(&rest.len())
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_prefixed_url_safe_and_128_bits() {
        let id = new_session_id();
        assert!(id.starts_with("session-"));
        assert_eq!(id.len(), "session-".len() + 22);
        assert!(is_well_formed(&id));
        assert_eq!(URL_SAFE_NO_PAD.decode(&id[8..]).unwrap().len(), 16);
    }

    #[test]
    fn ids_do_not_repeat() {
        let ids: HashSet<String> = (0..10_000).map(|_| new_session_id()).collect();
        assert_eq!(ids.len(), 10_000);
    }

    #[test]
    fn malformed_ids_are_recognised() {
        for bad in [
            "",
            "session-",
            "session-abc",
            "sess-AAAAAAAAAAAAAAAAAAAAAA",
            "session-AAAAAAAAAAAAAAAAAAAAA/",
            "session-../../etc/passwdxxxxxxxxx",
        ] {
            assert!(!is_well_formed(bad), "{bad}");
        }
    }
}
