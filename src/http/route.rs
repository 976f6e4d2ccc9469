//! Every request is classified once, here, into a [`Route`]: which resource
//! it is for, which session, which authentication rule and which rate
//! limits apply. The guard, the limits and the dispatch all read the same
//! value, so they cannot disagree about a path; a route without an
//! authentication rule or a limit does not compile (the matches below are
//! exhaustive), and adding a route is one edit to this file plus its
//! handler.

use axum::http::Method;

use crate::hosts::HostTarget;

/// What a request is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /api/health`.
    Health,
    /// `GET /api/openapi.json`.
    OpenApi,
    /// `GET /metrics`.
    Metrics,
    /// `GET /ws` without an upgrade: what this server is.
    Banner,
    /// `GET /`, `/s/SESSIONID` or `/assets/…`: the studio page.
    Studio,
    /// A WebSocket upgrade on `/` or `/ws`: the terminal protocol.
    Terminal,
    /// `GET /api/images`: the images a create may name.
    Images,
    /// `GET /api/containers`.
    ListSessions,
    /// `POST /api/containers`.
    CreateSession,
    /// `GET /api/containers/:sessionId`.
    GetSession(String),
    /// `DELETE /api/containers/:sessionId`.
    RemoveSession(String),
    /// `POST /api/preview/configure`.
    ConfigurePreview,
    /// `GET /api/containers/:sessionId/exec`: the running commands.
    ListCommands(String),
    /// `POST /api/containers/:sessionId/exec`.
    StartCommand(String),
    /// `GET /api/containers/:sessionId/exec/:execId`: state and output.
    GetCommand(String, String),
    /// `DELETE /api/containers/:sessionId/exec/:execId`: a signal.
    KillCommand(String, String),
    /// `POST /api/containers/:sessionId/exec/:execId/input`: stdin.
    CommandInput(String, String),
    /// `GET /api/containers/:sessionId/files?path=`: stat or listing.
    FileInfo(String),
    /// `DELETE /api/containers/:sessionId/files?path=`.
    RemoveFile(String),
    /// `GET /api/containers/:sessionId/files/content?path=`.
    ReadFile(String),
    /// `PUT /api/containers/:sessionId/files/content?path=`.
    WriteFile(String),
    /// `POST /api/containers/:sessionId/files/mkdir?path=`.
    MakeDirectory(String),
    /// `POST /api/containers/:sessionId/files/move`.
    MoveFile(String),
    /// `GET /api/containers/:sessionId/files/archive?path=`: a tar.
    DownloadArchive(String),
    /// `PUT /api/containers/:sessionId/files/archive?path=`: unpack a tar.
    UploadArchive(String),
    /// `GET /api/containers/:sessionId/events?since=`.
    Events(String),
    /// Anything under `/preview/`: the session is named in the path (the
    /// proxy reads the rest itself).
    PathPreview,
    /// Any request for a preview host name (`PORT-SESSION.domain`),
    /// whatever its path: it never reaches the API.
    HostPreview(HostTarget),
    /// A known path asked with a method it does not take; `Allow` lists
    /// the ones it does. `public`: the path's routes need no token, so
    /// neither does being told which methods it takes.
    MethodNotAllowed {
        allow: &'static str,
        api: bool,
        public: bool,
    },
    /// No such path.
    NotFound { api: bool },
}

/// Who may use a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Anyone.
    Public,
    /// With API tokens configured, a valid token (bearer header; `?token=`
    /// or the token subprotocol on a WebSocket upgrade).
    Token,
    /// The preview checks the session's owner itself (`auth::preview_gate`);
    /// a bearer token it carries must still be a valid one.
    Preview,
}

/// Which rate limits a route counts against (see the README's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit<'a> {
    None,
    /// The general API limit, per IP.
    General,
    /// General, then container operations per IP and session (per IP when
    /// there is no session yet).
    Container(Option<&'a str>),
    /// General, then preview configuration, per IP.
    Preview,
    /// WebSocket connections, per IP.
    WebSocket,
}

impl Route {
    pub fn auth(&self) -> Auth {
        match self {
            // The page holds no secrets: it asks for the token itself.
            Route::Health | Route::OpenApi | Route::Banner | Route::Studio => Auth::Public,
            Route::MethodNotAllowed { public: true, .. } => Auth::Public,
            Route::Metrics
            | Route::Terminal
            | Route::Images
            | Route::ListSessions
            | Route::CreateSession
            | Route::GetSession(_)
            | Route::RemoveSession(_)
            | Route::ConfigurePreview
            | Route::ListCommands(_)
            | Route::StartCommand(_)
            | Route::GetCommand(..)
            | Route::KillCommand(..)
            | Route::CommandInput(..)
            | Route::FileInfo(_)
            | Route::RemoveFile(_)
            | Route::ReadFile(_)
            | Route::WriteFile(_)
            | Route::MakeDirectory(_)
            | Route::MoveFile(_)
            | Route::DownloadArchive(_)
            | Route::UploadArchive(_)
            | Route::Events(_)
            // Unknown paths say nothing to a caller without a token.
            | Route::MethodNotAllowed { .. }
            | Route::NotFound { .. } => Auth::Token,
            Route::PathPreview | Route::HostPreview(_) => Auth::Preview,
        }
    }

    pub fn limit(&self) -> Limit<'_> {
        match self {
            Route::Health | Route::Banner | Route::Metrics | Route::Studio => Limit::None,
            Route::PathPreview | Route::HostPreview(_) => Limit::None,
            Route::OpenApi | Route::Images | Route::ListSessions | Route::GetSession(_) => {
                Limit::General
            }
            // A session's work: commands, files, events.
            Route::ListCommands(_)
            | Route::StartCommand(_)
            | Route::GetCommand(..)
            | Route::KillCommand(..)
            | Route::CommandInput(..)
            | Route::FileInfo(_)
            | Route::RemoveFile(_)
            | Route::ReadFile(_)
            | Route::WriteFile(_)
            | Route::MakeDirectory(_)
            | Route::MoveFile(_)
            | Route::DownloadArchive(_)
            | Route::UploadArchive(_)
            | Route::Events(_) => Limit::General,
            Route::CreateSession => Limit::Container(None),
            Route::RemoveSession(id) => Limit::Container(Some(id)),
            Route::ConfigurePreview => Limit::Preview,
            Route::Terminal => Limit::WebSocket,
            Route::MethodNotAllowed { api, .. } | Route::NotFound { api } => {
                if *api {
                    Limit::General
                } else {
                    Limit::None
                }
            }
        }
    }

    /// Whether the route is the terminal's WebSocket.
    /// The session the route names in its path, if any.
    pub fn session(&self) -> Option<&str> {
        match self {
            Route::GetSession(id)
            | Route::RemoveSession(id)
            | Route::ListCommands(id)
            | Route::StartCommand(id)
            | Route::GetCommand(id, _)
            | Route::KillCommand(id, _)
            | Route::CommandInput(id, _)
            | Route::FileInfo(id)
            | Route::RemoveFile(id)
            | Route::ReadFile(id)
            | Route::WriteFile(id)
            | Route::MakeDirectory(id)
            | Route::MoveFile(id)
            | Route::DownloadArchive(id)
            | Route::UploadArchive(id)
            | Route::Events(id) => Some(id),
            _ => None,
        }
    }

    pub fn is_terminal(&self) -> bool {
        matches!(self, Route::Terminal)
    }
}

/// One path segment, percent-decoded; `None` when it does not decode to
/// text (the dispatch answers that as a bad request).
fn segment(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

/// Classifies a request by its method, path, whether it asks for a
/// WebSocket upgrade, and the preview its host names (if any).
pub fn classify(
    method: &Method,
    path: &str,
    upgrade: bool,
    preview_host: Option<HostTarget>,
) -> Route {
    if let Some(target) = preview_host {
        return Route::HostPreview(target);
    }
    if path.starts_with("/preview/") {
        return Route::PathPreview;
    }
    let get = method == Method::GET || method == Method::HEAD;
    let post = method == Method::POST;
    let api = path == "/api" || path.starts_with("/api/");
    let wrong = |allow| Route::MethodNotAllowed {
        allow,
        api,
        public: false,
    };
    let wrong_public = |allow| Route::MethodNotAllowed {
        allow,
        api,
        public: true,
    };
    match path {
        "/" | "/ws" if get && upgrade => Route::Terminal,
        "/" if get => Route::Studio,
        "/ws" if get => Route::Banner,
        "/" | "/ws" => wrong_public("GET,HEAD"),
        _ if get && (path.starts_with("/s/") || path.starts_with("/assets/")) => Route::Studio,
        "/api/health" if get => Route::Health,
        "/api/openapi.json" if get => Route::OpenApi,
        "/metrics" if get => Route::Metrics,
        "/api/health" | "/api/openapi.json" => wrong_public("GET,HEAD"),
        "/metrics" => wrong("GET,HEAD"),
        "/api/images" if get => Route::Images,
        "/api/images" => wrong("GET,HEAD"),
        "/api/containers" if get => Route::ListSessions,
        "/api/containers" if post => Route::CreateSession,
        "/api/containers" => wrong("GET,HEAD,POST"),
        "/api/preview/configure" if post => Route::ConfigurePreview,
        "/api/preview/configure" => wrong("POST"),
        _ => match path.strip_prefix("/api/containers/") {
            Some(rest) => session_route(method, rest, api),
            None => Route::NotFound { api },
        },
    }
}

/// A route under `/api/containers/`: the session, and what of it.
fn session_route(method: &Method, rest: &str, api: bool) -> Route {
    let get = method == Method::GET || method == Method::HEAD;
    let post = method == Method::POST;
    let put = method == Method::PUT;
    let delete = method == Method::DELETE;
    let wrong = |allow| Route::MethodNotAllowed {
        allow,
        api,
        public: false,
    };
    let parts: Vec<&str> = rest.split('/').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Route::NotFound { api };
    }
    let Some(parts) = parts
        .iter()
        .map(|p| segment(p))
        .collect::<Option<Vec<String>>>()
    else {
        return Route::NotFound { api };
    };
    let mut parts = parts.into_iter();
    let id = parts.next().unwrap_or_default();
    let rest: Vec<String> = parts.collect();
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    match rest.as_slice() {
        [] if get => Route::GetSession(id),
        [] if delete => Route::RemoveSession(id),
        [] => wrong("DELETE,GET,HEAD"),
        ["exec"] if get => Route::ListCommands(id),
        ["exec"] if post => Route::StartCommand(id),
        ["exec"] => wrong("GET,HEAD,POST"),
        ["exec", e] if get => Route::GetCommand(id, e.to_string()),
        ["exec", e] if delete => Route::KillCommand(id, e.to_string()),
        ["exec", _] => wrong("DELETE,GET,HEAD"),
        ["exec", e, "input"] if post => Route::CommandInput(id, e.to_string()),
        ["exec", _, "input"] => wrong("POST"),
        ["files"] if get => Route::FileInfo(id),
        ["files"] if delete => Route::RemoveFile(id),
        ["files"] => wrong("DELETE,GET,HEAD"),
        ["files", "content"] if get => Route::ReadFile(id),
        ["files", "content"] if put => Route::WriteFile(id),
        ["files", "content"] => wrong("GET,HEAD,PUT"),
        ["files", "mkdir"] if post => Route::MakeDirectory(id),
        ["files", "mkdir"] => wrong("POST"),
        ["files", "move"] if post => Route::MoveFile(id),
        ["files", "move"] => wrong("POST"),
        ["files", "archive"] if get => Route::DownloadArchive(id),
        ["files", "archive"] if put => Route::UploadArchive(id),
        ["files", "archive"] => wrong("GET,HEAD,PUT"),
        ["events"] if get => Route::Events(id),
        ["events"] => wrong("GET,HEAD"),
        _ => Route::NotFound { api },
    }
}

#[cfg(test)]
impl Route {
    /// A number for each kind of route, for tests that must cover them all
    /// (the classification table here, the OpenAPI document). Exhaustive: a
    /// new route does not compile until it has one.
    pub(crate) fn index(&self) -> usize {
        match self {
            Route::Health => 0,
            Route::OpenApi => 1,
            Route::Metrics => 2,
            Route::Banner => 3,
            Route::Studio => 4,
            Route::Terminal => 5,
            Route::Images => 6,
            Route::ListSessions => 7,
            Route::CreateSession => 8,
            Route::GetSession(_) => 9,
            Route::RemoveSession(_) => 10,
            Route::ConfigurePreview => 11,
            Route::ListCommands(_) => 12,
            Route::StartCommand(_) => 13,
            Route::GetCommand(..) => 14,
            Route::KillCommand(..) => 15,
            Route::CommandInput(..) => 16,
            Route::FileInfo(_) => 17,
            Route::RemoveFile(_) => 18,
            Route::ReadFile(_) => 19,
            Route::WriteFile(_) => 20,
            Route::MakeDirectory(_) => 21,
            Route::MoveFile(_) => 22,
            Route::DownloadArchive(_) => 23,
            Route::UploadArchive(_) => 24,
            Route::Events(_) => 25,
            Route::PathPreview => 26,
            Route::HostPreview(_) => 27,
            Route::MethodNotAllowed { .. } => 28,
            Route::NotFound { .. } => 29,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SID: &str = "session-AAAAAAAAAAAAAAAAAAAAAA";

    /// For every route: a request that reaches it, the route it is, and the
    /// rule and limits the README documents for it.
    #[rustfmt::skip]
    fn table() -> Vec<(Method, String, bool, Route, Auth, Limit<'static>)> {
        let id = || SID.to_string();
        let host = HostTarget { port: 3000, session_label: SID.into() };
        vec![
            (Method::GET, "/api/health".into(), false, Route::Health, Auth::Public, Limit::None),
            (Method::GET, "/api/openapi.json".into(), false, Route::OpenApi, Auth::Public, Limit::General),
            (Method::GET, "/metrics".into(), false, Route::Metrics, Auth::Token, Limit::None),
            (Method::GET, "/ws".into(), false, Route::Banner, Auth::Public, Limit::None),
            (Method::GET, "/s/session-x".into(), false, Route::Studio, Auth::Public, Limit::None),
            (Method::GET, "/ws".into(), true, Route::Terminal, Auth::Token, Limit::WebSocket),
            (Method::GET, "/api/images".into(), false, Route::Images, Auth::Token, Limit::General),
            (Method::GET, "/api/containers".into(), false, Route::ListSessions, Auth::Token, Limit::General),
            (Method::POST, "/api/containers".into(), false, Route::CreateSession, Auth::Token, Limit::Container(None)),
            (Method::GET, format!("/api/containers/{SID}"), false, Route::GetSession(id()), Auth::Token, Limit::General),
            (Method::DELETE, format!("/api/containers/{SID}"), false, Route::RemoveSession(id()), Auth::Token, Limit::Container(Some(SID))),
            (Method::POST, "/api/preview/configure".into(), false, Route::ConfigurePreview, Auth::Token, Limit::Preview),
            (Method::GET, format!("/api/containers/{SID}/exec"), false, Route::ListCommands(id()), Auth::Token, Limit::General),
            (Method::POST, format!("/api/containers/{SID}/exec"), false, Route::StartCommand(id()), Auth::Token, Limit::General),
            (Method::GET, format!("/api/containers/{SID}/exec/e1"), false, Route::GetCommand(id(), "e1".into()), Auth::Token, Limit::General),
            (Method::DELETE, format!("/api/containers/{SID}/exec/e1"), false, Route::KillCommand(id(), "e1".into()), Auth::Token, Limit::General),
            (Method::POST, format!("/api/containers/{SID}/exec/e1/input"), false, Route::CommandInput(id(), "e1".into()), Auth::Token, Limit::General),
            (Method::GET, format!("/api/containers/{SID}/files"), false, Route::FileInfo(id()), Auth::Token, Limit::General),
            (Method::DELETE, format!("/api/containers/{SID}/files"), false, Route::RemoveFile(id()), Auth::Token, Limit::General),
            (Method::GET, format!("/api/containers/{SID}/files/content"), false, Route::ReadFile(id()), Auth::Token, Limit::General),
            (Method::PUT, format!("/api/containers/{SID}/files/content"), false, Route::WriteFile(id()), Auth::Token, Limit::General),
            (Method::POST, format!("/api/containers/{SID}/files/mkdir"), false, Route::MakeDirectory(id()), Auth::Token, Limit::General),
            (Method::POST, format!("/api/containers/{SID}/files/move"), false, Route::MoveFile(id()), Auth::Token, Limit::General),
            (Method::GET, format!("/api/containers/{SID}/files/archive"), false, Route::DownloadArchive(id()), Auth::Token, Limit::General),
            (Method::PUT, format!("/api/containers/{SID}/files/archive"), false, Route::UploadArchive(id()), Auth::Token, Limit::General),
            (Method::GET, format!("/api/containers/{SID}/events"), false, Route::Events(id()), Auth::Token, Limit::General),
            (Method::PUT, format!("/preview/{SID}/x"), false, Route::PathPreview, Auth::Preview, Limit::None),
            (Method::POST, "/api/containers".into(), false, Route::HostPreview(host), Auth::Preview, Limit::None),
            (Method::PATCH, "/api/containers".into(), false, Route::MethodNotAllowed { allow: "GET,HEAD,POST", api: true, public: false }, Auth::Token, Limit::General),
            (Method::GET, "/api/nothing".into(), false, Route::NotFound { api: true }, Auth::Token, Limit::General),
        ]
    }

    #[test]
    fn every_route_has_its_documented_rule_and_limits() {
        let table = table();
        for (i, (method, path, upgrade, route, auth, limit)) in table.into_iter().enumerate() {
            let host = match &route {
                Route::HostPreview(h) => Some(h.clone()),
                _ => None,
            };
            let got = classify(&method, &path, upgrade, host);
            assert_eq!(got, route, "{method} {path}");
            assert_eq!(got.index(), i, "{method} {path} is not in its row");
            assert_eq!(got.auth(), auth, "{method} {path}");
            assert_eq!(got.limit(), limit, "{method} {path}");
        }
    }

    /// A wrong method on a path whose routes are public is a 405 for
    /// anyone (the path and its methods are no secret); on any other path
    /// it needs a token first, like an unknown path.
    #[test]
    fn a_wrong_method_needs_a_token_only_where_the_path_does() {
        for (method, path, auth) in [
            (Method::TRACE, "/api/health", Auth::Public),
            (Method::POST, "/api/openapi.json", Auth::Public),
            (Method::DELETE, "/", Auth::Public),
            (Method::PUT, "/ws", Auth::Public),
            (Method::POST, "/metrics", Auth::Token),
            (Method::TRACE, "/api/images", Auth::Token),
            (Method::PATCH, "/api/containers", Auth::Token),
            (Method::POST, &format!("/api/containers/{SID}"), Auth::Token),
        ] {
            let route = classify(&method, path, false, None);
            assert!(
                matches!(route, Route::MethodNotAllowed { .. }),
                "{method} {path}"
            );
            assert_eq!(route.auth(), auth, "{method} {path}");
        }
    }

    #[test]
    fn paths_that_look_close_are_not_routes() {
        for path in [
            "/api/containers/",
            "/api/containers/a/b",
            "/api/containers/a/files/x",
            "/api/containers/a//exec",
            "/api/containers/a/exec/e/input/x",
            "/api/containersx",
            "/preview",
            "/wsx",
        ] {
            assert!(
                matches!(
                    classify(&Method::GET, path, false, None),
                    Route::NotFound { .. }
                ),
                "{path}"
            );
        }
        assert_eq!(
            classify(&Method::GET, "/nothing", false, None).limit(),
            Limit::None
        );
        assert_eq!(
            classify(&Method::GET, "/api/containers/session-%41", false, None),
            Route::GetSession("session-A".into())
        );
        assert!(matches!(
            classify(&Method::POST, "/ws", true, None),
            Route::MethodNotAllowed { .. }
        ));
    }
}
