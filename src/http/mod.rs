//! The front door: the one service every HTTP request enters.
//!
//! In order: the head's size and `Host` (`guard::check_head`), a CORS
//! preflight, the request's [`Route`] (`route::classify`, once), the
//! route's authentication rule (`guard::admit`), its rate limits
//! (`limits::check`), then its handler. One plain service and one `match`
//! instead of a router and a stack of middleware layers, so that the hot
//! path (preview requests, a page's every asset) pays for no routing or
//! boxing it does not need, and no route can be served without a rule.

pub mod guard;
mod limits;
pub mod route;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Request};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use crate::api;
use crate::app::AppState;
use crate::auth::Owner;
use crate::error::ApiError;
use crate::limits::ClientIp;
use crate::ops;
use crate::preview::{Connections, PreviewState};
pub use route::Route;

/// One connection's view of the server.
#[derive(Clone)]
pub struct Front {
    app: AppState,
    preview: PreviewState,
    peer: Option<SocketAddr>,
    /// This connection's kept-alive connections to preview upstreams.
    conns: Arc<Connections>,
}

/// Whether the request asks for a WebSocket.
pub fn is_websocket_upgrade(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

impl Front {
    pub fn new(app: AppState) -> Front {
        Front {
            conns: Arc::new(Connections::new(app.tasks.clone(), None)),
            preview: crate::preview::Preview::new(Arc::clone(&app)),
            app,
            peer: None,
        }
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

    async fn handle(self, mut req: Request) -> Response {
        // An error answered before a request's body was read whole (a
        // refused token, a missing session, a body over its limit) closes
        // the connection, and says so: the client must not send its next
        // request on a connection whose unread body the server is about to
        // drop with it. (The preview passes its app's answers on as they are.)
        let has_body = req.headers().contains_key(header::TRANSFER_ENCODING)
            || req
                .headers()
                .get(header::CONTENT_LENGTH)
                .is_some_and(|v| v.as_bytes() != b"0");
        let close = |mut resp: Response| {
            if has_body && (resp.status().is_client_error() || resp.status().is_server_error()) {
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            resp
        };
        let app = &self.app;
        if let Err(refusal) = guard::check_head(app, &req) {
            return close(refusal);
        }
        if let Some(preflight) = app.access.cors.preflight(req.method(), req.headers()) {
            return preflight;
        }
        let upgrade = is_websocket_upgrade(req.headers());
        let preview_host = crate::hosts::request_host(req.uri(), req.headers())
            .and_then(|h| crate::hosts::parse(h, &app.settings.preview_domain));
        let route = route::classify(req.method(), req.uri().path(), upgrade, preview_host);
        // In a fleet: a request another gateway relayed with the fleet's
        // proof was admitted and counted there. The relay's headers go no
        // further (not to a preview's app) whoever sent them.
        let relayed = match app.sessions.fleet() {
            Some(f) => {
                let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
                let r = crate::relay::relayed(f, req.method().as_str(), target, req.headers());
                for h in [
                    crate::relay::PROOF,
                    crate::relay::CLIENT_IP,
                    crate::relay::OWNER,
                ] {
                    req.headers_mut().remove(h);
                }
                r
            }
            None => None,
        };
        let admitted = match relayed.clone() {
            Some((ip, owner)) => guard::Admission {
                ip,
                owner: Some(owner),
                cors_origin: None,
            },
            None => match guard::admit(app, &req, &route, self.peer).await {
                Ok(a) => a,
                Err(refusal) => return close(refusal),
            },
        };
        let previewed = matches!(route, Route::PathPreview | Route::HostPreview(_));
        let counted = match relayed {
            Some(_) => Ok(None),
            None => limits::check(&app.limits, route.limit(), admitted.ip).await,
        };
        let mut resp = match counted {
            Err(refused) => close(refused),
            Ok(limit) => {
                let mut resp = if app.sessions.fleet().is_some() {
                    // Boxed: the fleet's steps stay out of the future a
                    // single server's every request pays for.
                    Box::pin(self.in_fleet(route, &admitted, relayed.is_some(), req)).await
                } else {
                    self.dispatch(route, admitted.owner.clone(), admitted.ip, req)
                        .await
                };
                // A refusal at a cap describes the cap itself, the tightest
                // limit there.
                if let Some(info) =
                    limit.filter(|_| !resp.headers().contains_key("x-ratelimit-limit"))
                {
                    info.apply(resp.headers_mut());
                }
                if previewed {
                    resp
                } else {
                    close(resp)
                }
            }
        };
        admitted.finish(app, &mut resp);
        resp
    }

    /// In a fleet: serves the request here, or relays it to the gateway
    /// that holds its session.
    async fn in_fleet(
        &self,
        route: Route,
        admitted: &guard::Admission,
        relayed: bool,
        mut req: Request,
    ) -> Response {
        // A preview configuration names its session in its body: read first
        // (it is small) to find the holder.
        let mut named = None;
        if route == Route::ConfigurePreview && !relayed {
            let (parts, body) = req.into_parts();
            let limit = crate::api::body::MAX_BODY_BYTES;
            let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
                return ApiError::MessageTooLarge(format!(
                    "The request body could not be read whole within {limit} bytes"
                ))
                .into_response();
            };
            named = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("sessionId")?.as_str().map(String::from));
            req = Request::from_parts(parts, axum::body::Body::from(bytes));
        }
        match self
            .holder(
                &route,
                admitted,
                relayed,
                req.uri().path(),
                named.as_deref(),
            )
            .await
        {
            Ok(None) => {
                self.dispatch(route, admitted.owner.clone(), admitted.ip, req)
                    .await
            }
            Ok(Some(url)) => {
                self.relay(url, route, admitted, named.as_deref(), req)
                    .await
            }
            Err(e) => e.into_response(),
        }
    }

    /// In a fleet: the URL of the gateway that holds the request's session,
    /// when another one does (`None`: serve it here). A relayed request is
    /// served here whatever happens: never relayed twice.
    async fn holder(
        &self,
        route: &Route,
        admitted: &guard::Admission,
        relayed: bool,
        path: &str,
        named: Option<&str>,
    ) -> Result<Option<String>, ApiError> {
        if relayed || self.app.sessions.fleet().is_none() {
            return Ok(None);
        }
        let sessions = &self.app.sessions;
        let (id, owner) = match route {
            Route::PathPreview => (crate::preview::path_session(path).map(str::to_string), None),
            Route::HostPreview(target) => {
                (sessions.resolve_label(&target.session_label).await, None)
            }
            Route::ConfigurePreview => (named.map(str::to_string), admitted.owner.as_ref()),
            route => (route.session().map(str::to_string), admitted.owner.as_ref()),
        };
        let Some(id) = id else {
            return Ok(None);
        };
        match sessions.locate(&id, owner).await {
            Ok(crate::session::Located::Elsewhere(url)) => Ok(Some(url)),
            Err(e @ ApiError::DockerDaemon(_)) => Err(e),
            // Here, or not found: the handler says so as it always does.
            _ => Ok(None),
        }
    }

    /// Passes the request to the gateway that holds its session. A holder
    /// that does not answer has stopped or died: its session moves to
    /// another gateway (or here) within a lease, which this waits for.
    async fn relay(
        &self,
        mut url: String,
        route: Route,
        admitted: &guard::Admission,
        named: Option<&str>,
        req: Request,
    ) -> Response {
        let app = &self.app;
        let Some(fleet) = app.sessions.fleet() else {
            return ApiError::DockerDaemon("This server is in no fleet".into()).into_response();
        };
        let deadline = std::time::Instant::now()
            + crate::fleet::LEASE_TTL
            + crate::fleet::RENEW_EVERY
            + std::time::Duration::from_secs(1);
        loop {
            match crate::relay::http::connect(&url, &app.tasks, &app.shutdown).await {
                Ok(c) => {
                    return crate::relay::http::forward(
                        fleet,
                        &url,
                        c,
                        req,
                        &admitted.ip,
                        admitted.owner.as_ref(),
                        &app.tasks,
                        &app.shutdown,
                    )
                    .await
                }
                Err(e) if std::time::Instant::now() < deadline => {
                    tracing::debug!(gateway = %url, error = %e, "the session's gateway does not answer; waiting for its lease");
                    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                    let path = req.uri().path().to_string();
                    match self.holder(&route, admitted, false, &path, named).await {
                        Ok(Some(u)) => url = u,
                        Ok(None) => {
                            return self
                                .dispatch(route, admitted.owner.clone(), admitted.ip, req)
                                .await
                        }
                        Err(e) => return e.into_response(),
                    }
                }
                Err(e) => return crate::relay::http::unavailable(&url, e),
            }
        }
    }

    async fn dispatch(
        &self,
        route: Route,
        owner: Option<Owner>,
        ip: ClientIp,
        req: Request,
    ) -> Response {
        match route {
            Route::PathPreview => crate::preview::serve_path(&self.preview, &self.conns, req).await,
            Route::HostPreview(target) => {
                crate::preview::serve_host(&self.preview, &self.conns, target, req).await
            }
            // Boxed: a future holds the state of every handler it may run,
            // and hyper moves each request's future around whole, so the
            // API's handlers stay out of the one the preview (a page's
            // every asset) pays for.
            route => Box::pin(self.api(route, owner, ip, req)).await,
        }
    }

    async fn api(
        &self,
        route: Route,
        owner: Option<Owner>,
        ip: ClientIp,
        req: Request,
    ) -> Response {
        let app = &*self.app;
        // Routes whose rule is a token get the caller from the guard; one
        // that reached here without (a rule and a handler that disagree) is
        // refused, never served as nobody.
        let owner = || {
            owner
                .clone()
                .ok_or_else(|| ApiError::Authentication("Missing or invalid API token".into()))
        };
        let result: Result<Response, ApiError> = match route {
            Route::Health => Ok(api::health::health(app).await.into_response()),
            Route::OpenApi => {
                Ok(api::openapi::openapi(app.access.tokens.enabled()).into_response())
            }
            Route::Metrics => Ok(api::metrics::metrics(app).await),
            Route::Banner => Ok(banner()),
            Route::Studio => Ok(crate::web::serve(
                req.uri().path(),
                req.headers(),
                &app.settings.preview_domain,
            )),
            Route::Terminal => match owner() {
                Ok(o) => return self.terminal(o, ip, req).await,
                Err(e) => Err(e),
            },
            Route::Images => async {
                owner()?;
                ops::images(app).await.map(axum::Json)
            }
            .await
            .map(IntoResponse::into_response),
            Route::ListSessions => async { api::containers::list(app, &owner()?).await }
                .await
                .map(IntoResponse::into_response),
            Route::CreateSession => async { api::containers::create(app, &owner()?, req).await }
                .await
                .map(IntoResponse::into_response),
            Route::GetSession(id) => async { api::containers::get(app, &owner()?, &id).await }
                .await
                .map(IntoResponse::into_response),
            Route::RemoveSession(id) => {
                async { api::containers::remove(app, &owner()?, &id).await }
                    .await
                    .map(IntoResponse::into_response)
            }
            Route::ConfigurePreview => async { api::preview::configure(app, &owner()?, req).await }
                .await
                .map(IntoResponse::into_response),
            Route::ListCommands(id) => async { api::exec::list(app, &owner()?, &id).await }
                .await
                .map(IntoResponse::into_response),
            Route::StartCommand(id) => {
                async { api::exec::start(app, &owner()?, &id, req).await }.await
            }
            Route::GetCommand(id, e) => async { api::exec::get(app, &owner()?, &id, &e).await }
                .await
                .map(IntoResponse::into_response),
            Route::KillCommand(id, e) => {
                async { api::exec::kill(app, &owner()?, &id, &e, req).await }
                    .await
                    .map(IntoResponse::into_response)
            }
            Route::CommandInput(id, e) => {
                async { api::exec::input(app, &owner()?, &id, &e, req).await }.await
            }
            Route::FileInfo(id) => async { api::files::info(app, &owner()?, &id, req).await }
                .await
                .map(IntoResponse::into_response),
            Route::RemoveFile(id) => async { api::files::remove(app, &owner()?, &id, req).await }
                .await
                .map(IntoResponse::into_response),
            Route::ReadFile(id) => async { api::files::read(app, &owner()?, &id, req).await }.await,
            Route::WriteFile(id) => {
                async { api::files::write(app, &owner()?, &id, req).await }.await
            }
            Route::MakeDirectory(id) => {
                async { api::files::mkdir(app, &owner()?, &id, req).await }.await
            }
            Route::MoveFile(id) => async { api::files::rename(app, &owner()?, &id, req).await }
                .await
                .map(IntoResponse::into_response),
            Route::DownloadArchive(id) => {
                async { api::files::download(app, &owner()?, &id, req).await }.await
            }
            Route::UploadArchive(id) => {
                async { api::files::upload(app, &owner()?, &id, req).await }
                    .await
                    .map(IntoResponse::into_response)
            }
            Route::Events(id) => async { api::events::list(app, &owner()?, &id, req).await }.await,
            Route::PathPreview | Route::HostPreview(_) => {
                unreachable!("dispatch serves previews")
            }
            Route::MethodNotAllowed { allow, .. } => {
                let mut resp =
                    api::method_not_allowed(req.method(), req.uri().path()).into_response();
                resp.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(allow));
                return resp;
            }
            Route::NotFound { .. } => Err(api::not_found(req.uri().path())),
        };
        result.unwrap_or_else(IntoResponse::into_response)
    }

    /// The terminal's WebSocket upgrade.
    async fn terminal(&self, owner: Owner, ip: ClientIp, req: Request) -> Response {
        let host = crate::hosts::request_host(req.uri(), req.headers()).map(str::to_string);
        let (mut parts, _) = req.into_parts();
        match axum::extract::ws::WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
            Ok(ws) => crate::ws::upgrade(Arc::clone(&self.app), owner, ip, host, ws),
            Err(rejection) => rejection.into_response(),
        }
    }
}

/// `GET /` and `/ws` without an upgrade: what this server is.
fn banner() -> Response {
    axum::Json(serde_json::json!({
        "service": "claude-studio",
        "version": env!("CARGO_PKG_VERSION"),
        "websocket": "Connect with a WebSocket client to / or /ws",
        "health": "/api/health",
    }))
    .into_response()
}
