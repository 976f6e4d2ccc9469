//! API tokens: kept only as SHA-256 digests, compared in constant time,
//! and turned into the [`Owner`] of the sessions they create.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::owner::Owner;

pub struct Tokens {
    digests: Vec<[u8; 32]>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The owner a token's sessions get: a fingerprint of the token's digest,
/// so neither the token nor its digest ever reaches a container label.
fn fingerprint(digest: &[u8; 32]) -> Owner {
    let mut h = Sha256::new();
    h.update(b"claude-studio owner v1\0");
    h.update(digest);
    let fp: [u8; 32] = h.finalize().into();
    Owner(Some(fp[..16].iter().map(|b| format!("{b:02x}")).collect()))
}

impl Tokens {
    pub fn new(tokens: &[String]) -> Tokens {
        let mut digests: Vec<[u8; 32]> = tokens.iter().map(|t| digest(t)).collect();
        digests.sort();
        digests.dedup();
        Tokens { digests }
    }

    /// Auth is on as soon as one token is configured.
    pub fn enabled(&self) -> bool {
        !self.digests.is_empty()
    }

    /// The owner of `presented`, if it is one of the tokens. Every
    /// configured digest is compared, in constant time, whatever matches.
    pub fn verify(&self, presented: &str) -> Option<Owner> {
        let d = digest(presented);
        let mut found: Option<&[u8; 32]> = None;
        for known in &self.digests {
            if bool::from(known.ct_eq(&d)) {
                found = Some(known);
            }
        }
        found.map(fingerprint)
    }
}

/// The token of `Authorization: Bearer TOKEN`.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let v = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn right_wrong_and_owner_fingerprints() {
        let t = Tokens::new(&["alpha-token".into(), "beta-token".into()]);
        assert!(t.enabled());
        let a = t.verify("alpha-token").unwrap();
        let b = t.verify("beta-token").unwrap();
        assert_ne!(a, b);
        assert_eq!(a, t.verify("alpha-token").unwrap());
        assert!(t.verify("alpha-token ").is_none());
        assert!(t.verify("").is_none());
        let label = a.label();
        assert_eq!(label.len(), 32);
        assert!(!label.contains("alpha"));
        let digest_hex: String = digest("alpha-token")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(
            !digest_hex.contains(label),
            "the owner is not the token's digest"
        );
        assert!(!Tokens::new(&[]).enabled());
    }

    #[test]
    fn bearer_header_is_parsed() {
        let mut h = axum::http::HeaderMap::new();
        h.insert("authorization", "Bearer abc".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        h.insert("authorization", "bearer  xyz ".parse().unwrap());
        assert_eq!(bearer(&h), Some("xyz"));
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }
}
