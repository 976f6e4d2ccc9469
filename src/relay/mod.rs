//! Reaching the gateway that holds a session, in a fleet (`crate::fleet`):
//! a request or message for a session another gateway holds is passed to
//! that gateway, which serves it as if the client had come to it.
//!
//! - `http`: a whole HTTP request (REST, preview, a preview's WebSocket
//!   upgrade), passed on and its answer streamed back.
//! - `link`: the terminal protocol: one WebSocket to the holder per client
//!   connection and remote session, carrying that session's messages both
//!   ways.
//!
//! The holder trusts a relayed request only with the fleet's proof
//! ([`PROOF`], derived from the fleet's secret); it then takes the client's
//! address and owner from the relay's headers, and does not count the
//! request against the rate limits again (the first gateway did).

pub mod http;
pub mod link;

use axum::http::{HeaderMap, HeaderValue};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::auth::Owner;
use crate::fleet::Fleet;
use crate::limits::ClientIp;

/// The fleet's proof that a gateway relayed the request.
pub const PROOF: &str = "x-studio-relay";
/// The client's address, as the first gateway saw it.
pub const CLIENT_IP: &str = "x-studio-client-ip";
/// The caller (an owner fingerprint; empty for nobody), as the first
/// gateway authenticated it.
pub const OWNER: &str = "x-studio-owner";

/// The proof a relayed request carries: a digest of the fleet's secret, so
/// the secret itself never travels.
pub fn proof(fleet: &Fleet) -> String {
    let mut h = Sha256::new();
    h.update(b"claude-studio relay v1\0");
    h.update(fleet.secret());
    let d: [u8; 32] = h.finalize().into();
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// A relayed request's client and caller, if it carries the fleet's proof.
pub fn relayed(fleet: &Fleet, headers: &HeaderMap) -> Option<(ClientIp, Owner)> {
    let presented = headers.get(PROOF)?;
    if !bool::from(presented.as_bytes().ct_eq(proof(fleet).as_bytes())) {
        return None;
    }
    let ip = headers
        .get(CLIENT_IP)?
        .to_str()
        .ok()?
        .parse::<std::net::IpAddr>()
        .ok()?;
    let owner = headers
        .get(OWNER)
        .and_then(|v| v.to_str().ok())
        .map(Owner::from_label)
        .unwrap_or_default();
    Some((ClientIp(ip), owner))
}

/// Writes the relay's headers (over any a client sent).
pub fn stamp(fleet: &Fleet, headers: &mut HeaderMap, ip: &ClientIp, owner: Option<&Owner>) {
    let value = |s: &str| HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(""));
    headers.insert(PROOF, value(&proof(fleet)));
    headers.insert(CLIENT_IP, value(&ip.key().to_string()));
    match owner {
        Some(o) => headers.insert(OWNER, value(o.label())),
        None => headers.remove(OWNER),
    };
}
