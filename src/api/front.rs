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
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use axum::serve::IncomingStream;
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
            conns: Arc::new(Connections::new(app.tasks.clone())),
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
                    if let Some(info) = limit {
                        info.apply(resp.headers_mut());
                    }
                    resp
                }
            }
        };
        admitted.finish(&self.app, &mut resp);
        resp
    }
}

impl Service<Request> for Front {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.handle(req).await) })
    }
}

/// Makes each accepted connection's [`Front`], which knows the peer.
impl<'a, L> Service<IncomingStream<'a, L>> for Front
where
    L: axum::serve::Listener<Addr = SocketAddr>,
{
    type Response = Front;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Front, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, stream: IncomingStream<'a, L>) -> Self::Future {
        let mut front = self.clone();
        front.peer = Some(*stream.remote_addr());
        front.conns = Arc::new(Connections::new(self.app.tasks.clone()));
        std::future::ready(Ok(front))
    }
}
