//! The server's front door: the one service every request enters.
//!
//! In order: the access guard (`auth::guard::admit`: head size, `Host`,
//! CORS, client IP, `Origin`, token); preview traffic, by host name or
//! `/preview/` path, straight to the preview proxy; then the rate limits
//! (`limits::policy::check`) and the API router. One plain service
//! instead of a stack of middleware layers, so that the hot path (preview
//! requests, a page's every asset) pays for no routing or boxing it does
//! not need.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use axum::Router;
use tower_service::Service;

use crate::app::AppState;
use crate::preview::{Connections, PreviewState};

/// One connection's view of the server.
#[derive(Clone)]
pub struct Front {
    app: AppState,
    preview: PreviewState,
    router: Router,
    peer: Option<SocketAddr>,
    /// This connection's kept-alive connections to preview upstreams.
    conns: Arc<Connections>,
}

impl Front {
    pub fn new(app: AppState, preview: PreviewState, router: Router) -> Front {
        Front {
            conns: Arc::new(Connections::new(app.tasks.clone(), None)),
            app,
            preview,
            router,
            peer: None,
        }
    }

    async fn handle(mut self, mut req: Request) -> Response {
        if let Some(peer) = self.peer {
            req.extensions_mut().insert(ConnectInfo(peer));
        }
        let mut admitted = match crate::auth::guard::admit(&self.app, &mut req) {
            Ok(a) => a,
            Err(refusal) => return refusal,
        };
        let mut resp = if let Some(found) = admitted.preview_host.take() {
            crate::preview::serve_host(&self.preview, &self.conns, found, req).await
        } else if req.uri().path().starts_with("/preview/") {
            crate::preview::serve_path(&self.preview, &self.conns, req).await
        } else {
            match crate::limits::policy::check(&self.app, &req, admitted.ip) {
                Err(refused) => refused,
                Ok(limit) => {
                    let Ok(mut resp) = self.router.call(req).await;
                    // A refusal at a cap describes the cap itself, the
                    // tightest limit there.
                    if let Some(info) =
                        limit.filter(|_| !resp.headers().contains_key("x-ratelimit-limit"))
                    {
                        info.apply(resp.headers_mut());
                    }
                    resp
                }
            }
        };
        admitted.finish(&self.app, &mut resp);
        resp
    }

    /// The view of one accepted connection, which knows its peer and keeps
    /// its own upstream connections for the preview.
    pub fn for_connection(&self, peer: SocketAddr) -> Front {
        Front {
            peer: Some(peer),
            conns: Arc::new(Connections::new(self.app.tasks.clone(), Some(peer.ip()))),
            ..self.clone()
        }
    }

    /// Serves one request of this connection.
    pub async fn call(self, req: Request) -> Result<Response, Infallible> {
        Ok(self.handle(req).await)
    }
}
