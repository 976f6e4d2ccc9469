//! Signed preview tokens: HMAC-SHA256 over (purpose, session, owner,
//! expiry) with a key made at start-up.
//!
//! A browser tab cannot send `Authorization` when it follows a link, so an
//! owner's right to a preview travels as a short-lived token in the link
//! (`previewUrl?token=`), which the preview exchanges for an HttpOnly
//! cookie scoped to that preview. Tokens name one session and one owner,
//! expire, and cannot be forged or guessed without the key. The key lives
//! only in memory: a restart invalidates them (configure again).

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use super::owner::Owner;

/// Lifetime of the token in a `previewUrl`: long enough to open the link.
pub const LINK_TTL: Duration = Duration::from_secs(5 * 60);
/// Lifetime of the preview cookie.
pub const COOKIE_TTL: Duration = Duration::from_secs(12 * 60 * 60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Link,
    Cookie,
}

impl Purpose {
    fn tag(self) -> &'static str {
        match self {
            Purpose::Link => "link",
            Purpose::Cookie => "cookie",
        }
    }
}

pub struct PreviewSigner {
    key: [u8; 32],
}

impl Default for PreviewSigner {
    fn default() -> Self {
        PreviewSigner {
            key: rand::random(),
        }
    }
}

impl PreviewSigner {
    /// A signer whose key is derived from `secret` (a fleet's, so that a
    /// link one gateway signs opens the preview through any other).
    pub fn from_secret(secret: &[u8; 32]) -> PreviewSigner {
        let mut h = Sha256::new();
        h.update(b"claude-studio preview key v1\0");
        h.update(secret);
        PreviewSigner {
            key: h.finalize().into(),
        }
    }

    fn mac(&self, purpose: Purpose, session_id: &str, owner: &Owner, expires: u64) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .expect("HMAC takes any key length");
        for part in [
            "claude-studio preview v1",
            purpose.tag(),
            session_id,
            owner.label(),
            &expires.to_string(),
        ] {
            mac.update(part.as_bytes());
            mac.update(b"\0");
        }
        mac
    }

    /// `EXPIRES.MAC`, URL-safe.
    pub fn mint(
        &self,
        purpose: Purpose,
        session_id: &str,
        owner: &Owner,
        now_secs: u64,
        ttl: Duration,
    ) -> String {
        let expires = now_secs + ttl.as_secs();
        let tag: [u8; 32] = self
            .mac(purpose, session_id, owner, expires)
            .finalize()
            .into_bytes()
            .into();
        format!("{expires}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// Whether `token` was minted by this server for this purpose, session
    /// and owner, and has not expired. The MAC is compared in constant time.
    pub fn verify(
        &self,
        token: &str,
        purpose: Purpose,
        session_id: &str,
        owner: &Owner,
        now_secs: u64,
    ) -> bool {
        let Some((exp, tag)) = token.split_once('.') else {
            return false;
        };
        let (Ok(expires), Ok(tag)) = (exp.parse::<u64>(), URL_SAFE_NO_PAD.decode(tag)) else {
            return false;
        };
        expires >= now_secs
            && self
                .mac(purpose, session_id, owner, expires)
                .verify_slice(&tag)
                .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(s: &str) -> Owner {
        Owner(Some(s.into()))
    }

    #[test]
    fn a_token_opens_only_its_own_session_for_its_owner_until_it_expires() {
        let s = PreviewSigner::default();
        let t = s.mint(Purpose::Link, "session-a", &owner("o1"), 1000, LINK_TTL);
        assert!(s.verify(&t, Purpose::Link, "session-a", &owner("o1"), 1000));
        assert!(s.verify(&t, Purpose::Link, "session-a", &owner("o1"), 1300));
        assert!(
            !s.verify(&t, Purpose::Link, "session-a", &owner("o1"), 1301),
            "expired"
        );
        assert!(
            !s.verify(&t, Purpose::Link, "session-b", &owner("o1"), 1000),
            "other session"
        );
        assert!(
            !s.verify(&t, Purpose::Link, "session-a", &owner("o2"), 1000),
            "other owner"
        );
        assert!(
            !s.verify(&t, Purpose::Cookie, "session-a", &owner("o1"), 1000),
            "other purpose"
        );
        assert!(
            !PreviewSigner::default().verify(&t, Purpose::Link, "session-a", &owner("o1"), 1000),
            "other key"
        );
    }

    #[test]
    fn tampered_tokens_fail() {
        let s = PreviewSigner::default();
        let t = s.mint(Purpose::Cookie, "session-a", &owner("o1"), 1000, COOKIE_TTL);
        let (exp, tag) = t.split_once('.').unwrap();
        let later = format!("{}.{tag}", exp.parse::<u64>().unwrap() + 10_000);
        assert!(!s.verify(&later, Purpose::Cookie, "session-a", &owner("o1"), 1000));
        for bad in ["", ".", "abc", "1.", "99999999999.AAAA", &t[..t.len() - 2]] {
            assert!(
                !s.verify(bad, Purpose::Cookie, "session-a", &owner("o1"), 1000),
                "{bad}"
            );
        }
    }
}
