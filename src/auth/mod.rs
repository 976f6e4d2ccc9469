//! Who may do what: API tokens and the owner they stand for, browser-facing
//! checks (`Host`, `Origin`), and signed access to previews.
//!
//! - `tokens`: hashed API tokens, constant-time checks, owner fingerprints.
//! - `owner`: [`Owner`], whose sessions are whose.
//! - `origin`: the names and origins the server answers to.
//! - `cors`: `--cors-origin` (CORS is closed without it).
//! - `preview_token`, `preview_gate`: signed links and cookies that let a
//!   browser tab open its owner's preview, and nobody else's.

pub mod cors;
pub mod origin;
pub mod owner;
pub mod preview_gate;
pub mod preview_token;
pub mod tokens;

use std::net::SocketAddr;

use std::sync::Arc;

use crate::config::Settings;

pub use origin::Names;
pub use owner::Owner;
pub use preview_gate::{strip_credentials, PreviewAccess, PreviewGate};

pub struct Access {
    pub tokens: tokens::Tokens,
    pub names: Arc<origin::Names>,
    pub preview: preview_token::PreviewSigner,
    pub trust_proxy: bool,
    pub cors: cors::Cors,
}

impl Access {
    /// `secret`: a fleet's shared key, which preview links are signed
    /// with; `None`, a key of this process's own.
    pub fn new(s: &Settings, secret: Option<&[u8; 32]>) -> Access {
        Access {
            tokens: tokens::Tokens::new(&s.api_tokens),
            names: Arc::new(origin::Names::new(s)),
            preview: secret.map_or_else(
                preview_token::PreviewSigner::default,
                preview_token::PreviewSigner::from_secret,
            ),
            trust_proxy: s.trust_proxy,
            cors: cors::Cors::new(&s.cors_origins),
        }
    }

    /// Called once the listener is bound: the server's own origins carry
    /// the real port.
    pub fn set_bound(&self, addr: SocketAddr) {
        self.names.set_bound(addr);
    }

    pub fn preview_gate(&self) -> PreviewGate<'_> {
        PreviewGate { access: self }
    }
}
