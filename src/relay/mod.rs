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
//! ([`PROOF`]: a MAC keyed with the fleet's secret over the time, the
//! request line and the identity headers); it then takes the client's
//! address and owner from the relay's headers, and does not count the
//! request against the rate limits again (the first gateway did).

pub mod http;
pub mod link;

use axum::http::{HeaderMap, HeaderValue};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
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

/// How far a relayed request's time may be from the holder's clock.
const PROOF_WINDOW_SECS: i64 = 30;

/// The proof a relayed request carries: `UNIXTIME.MAC`, the MAC a digest
/// keyed with the fleet's secret over the time, the request's method and
/// path, and the client and owner headers. The secret never travels, and a
/// proof vouches for one request's line and identity for
/// [`PROOF_WINDOW_SECS`], not for whatever else a sniffer might send.
fn mac(fleet: &Fleet, time: i64, method: &str, path: &str, ip: &str, owner: &str) -> String {
    mac_with(fleet.secret(), time, method, path, ip, owner)
}

fn mac_with(
    secret: &[u8; 32],
    time: i64,
    method: &str,
    path: &str,
    ip: &str,
    owner: &str,
) -> String {
    let mut m =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length");
    for part in [
        "claude-studio relay v2",
        &time.to_string(),
        method,
        path,
        ip,
        owner,
    ] {
        m.update(part.as_bytes());
        m.update(b"\0");
    }
    let d: [u8; 32] = m.finalize().into_bytes().into();
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A relayed request's client and caller, if it carries a valid proof of
/// the fleet for this `method` and `path`.
pub fn relayed(
    fleet: &Fleet,
    method: &str,
    path: &str,
    headers: &HeaderMap,
) -> Option<(ClientIp, Owner)> {
    let (time, presented) = header(headers, PROOF)?.split_once('.')?;
    let time: i64 = time.parse().ok()?;
    if (crate::clock::now_secs() - time).abs() > PROOF_WINDOW_SECS {
        return None;
    }
    let ip = header(headers, CLIENT_IP)?;
    let owner = header(headers, OWNER).unwrap_or("");
    let expected = mac(fleet, time, method, path, ip, owner);
    if !bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
        return None;
    }
    let ip = ip.parse::<std::net::IpAddr>().ok()?;
    Some((ClientIp(ip), Owner::from_label(owner)))
}

/// Writes the relay's headers for a request of `method` to `path` (over
/// any a client sent).
pub fn stamp(
    fleet: &Fleet,
    method: &str,
    path: &str,
    headers: &mut HeaderMap,
    ip: &ClientIp,
    owner: Option<&Owner>,
) {
    let value = |s: &str| HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(""));
    let ip = ip.key().to_string();
    let owner = owner.map_or("", Owner::label);
    let time = crate::clock::now_secs();
    let proof = format!("{time}.{}", mac(fleet, time, method, path, &ip, owner));
    headers.insert(PROOF, value(&proof));
    headers.insert(CLIENT_IP, value(&ip));
    headers.insert(OWNER, value(owner));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_vouches_for_one_request_line_and_identity() {
        let secret = [7u8; 32];
        let time = crate::clock::now_secs();
        let m = |t, method, path, ip, owner| mac_with(&secret, t, method, path, ip, owner);
        let good = m(time, "GET", "/ws", "10.0.0.1", "abc");
        assert_eq!(good, m(time, "GET", "/ws", "10.0.0.1", "abc"));
        for other in [
            m(time + 1, "GET", "/ws", "10.0.0.1", "abc"),
            m(time, "POST", "/ws", "10.0.0.1", "abc"),
            m(time, "GET", "/ws?x", "10.0.0.1", "abc"),
            m(time, "GET", "/ws", "10.0.0.2", "abc"),
            m(time, "GET", "/ws", "10.0.0.1", ""),
            mac_with(&[8u8; 32], time, "GET", "/ws", "10.0.0.1", "abc"),
        ] {
            assert_ne!(good, other);
        }
    }
}
