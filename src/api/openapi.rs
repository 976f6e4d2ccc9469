//! `GET /api/openapi.json`: the REST API described as OpenAPI 3.0.3.
//!
//! The document is built once, from the same sources the server runs on:
//! every operation's authentication rule and rate limits come from
//! [`crate::http::route::classify`] (so the document cannot say a route is
//! public when the guard wants a token), and the limits it states are the
//! handlers' own constants. What the server accepts is described exactly
//! where OpenAPI 3.0 can say it: request bodies are strict
//! (`additionalProperties: false`, `nullable` where `null` is taken for
//! "absent"), and every error status an operation can answer has its body.
//! The tests below hold the document to the route table and to the shapes
//! the handlers really produce.

use std::sync::LazyLock;

use axum::http::{header, Method};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use crate::http::route::{classify, Auth, Limit, Route};

/// `GET /api/openapi.json`: the document for a server with API tokens or
/// without, each serialized once.
pub fn openapi(tokens: bool) -> Response {
    static WITH_TOKENS: LazyLock<String> = LazyLock::new(|| document().to_string());
    static WITHOUT_TOKENS: LazyLock<String> =
        LazyLock::new(|| document_without_tokens().to_string());
    let text = if tokens {
        WITH_TOKENS.as_str()
    } else {
        WITHOUT_TOKENS.as_str()
    };
    ([(header::CONTENT_TYPE, "application/json")], text).into_response()
}

/// The document as a server without API tokens serves it: no operation
/// needs the bearer scheme (the top-level `security` is empty; the scheme
/// stays described), and none answers 401. Saying a token is required
/// where the server takes none would be wrong for every client and tester
/// that reads the document.
pub fn document_without_tokens() -> Value {
    let mut doc = document();
    doc["security"] = json!([]);
    if let Some(paths) = doc["paths"].as_object_mut() {
        for item in paths.values_mut() {
            for op in item
                .as_object_mut()
                .into_iter()
                .flat_map(|i| i.values_mut())
            {
                if let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) {
                    responses.remove("401");
                }
            }
        }
    }
    doc
}

/// A session id as this server makes them (`session::id`).
const SESSION_ID_PATTERN: &str = "^session-[A-Za-z0-9_-]{22,64}$";
/// What a session id looks like, for examples.
const EXAMPLE_SESSION_ID: &str = "session-Xb3kq2B9vR1mZ8tY4wL0pA";
/// A command id: the client's (1 to 64 of `A-Za-z0-9_-`) or the server's.
const EXEC_ID_PATTERN: &str = "^[A-Za-z0-9_-]{1,64}$";
/// Longest name a filesystem takes (bytes; the patterns count characters).
const MAX_NAME: usize = 255;

/// A path segment that names something (not empty, `.` or `..`), at most
/// `max` long.
fn name_pattern(max: usize) -> String {
    format!(
        "(?:[^/.\\x00][^/\\x00]{{0,{}}}|\\.[^/.\\x00][^/\\x00]{{0,{}}}|\\.\\.[^/\\x00]{{1,{}}})",
        max - 1,
        max - 2,
        max - 2
    )
}

/// Which paths a session's files may be reached by (`runtime::files::locate`).
#[derive(Clone, Copy)]
enum PathKind {
    /// Under one of the places, or a place itself.
    Any,
    /// Something below a place (what is removed, moved).
    Below,
    /// A file to write: written beside its final name first, under a
    /// longer temporary name, so its own name must leave room for that.
    Written,
}

/// An absolute path under one of the places, no NUL, no `..` segment, no
/// name longer than a filesystem takes.
fn session_path_pattern(kind: PathKind) -> String {
    let name = name_pattern(MAX_NAME);
    // Any segment the server takes (empty and `.` ones are ignored).
    let segment = format!("(?:\\.?|{name})");
    let place = "/(?:workspace|home/studio|tmp)";
    match kind {
        PathKind::Any => format!("^{place}(?:/{segment})*$"),
        PathKind::Below => format!("^{place}(?:/{segment})*/{name}(?:/{segment})*$"),
        PathKind::Written => {
            let leaf = name_pattern(MAX_NAME);
            format!("^{place}(?:/{segment})*/{leaf}(?:/\\.?)*$")
        }
    }
}
/// Longest path in the session's files, and longest `workspaceDir`.
const MAX_PATH_BYTES: usize = 4096;
/// `protocol::client::Exec::argv`: at most this many arguments.
const MAX_ARGS: usize = 4096;
/// `protocol::validate::env_pairs`.
const MAX_ENV_VARS: usize = 64;
const MAX_ENV_KEY: usize = 128;
const MAX_ENV_VALUE: usize = 8 * 1024;
/// `image::ImageRef::parse`.
const MAX_IMAGE_LEN: usize = 255;
/// `runtime::spec::WORKDIR`: where a command runs when it names no `cwd`.
const DEFAULT_CWD: &str = crate::runtime::spec::WORKDIR;
/// Canonical standard base64 (padded, no stray bits), as `decode_data` takes it.
const BASE64_PATTERN: &str =
    "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?$";
/// Signals a client may send a command (`protocol::client::parse_signal`).
const SIGNALS: [(&str, u8); 10] = [
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("KILL", 9),
    ("USR1", 10),
    ("USR2", 12),
    ("TERM", 15),
    ("CONT", 18),
    ("STOP", 19),
    ("WINCH", 28),
];

/// Every error name the server's error type has (`ApiError::name`).
const ERROR_NAMES: [&str; 11] = [
    "ValidationError",
    "AuthenticationError",
    "ContainerNotFoundError",
    "FileNotFoundError",
    "CommandNotFoundError",
    "MessageTooLarge",
    "RateLimitError",
    "ContainerCreationError",
    "DockerDaemonError",
    "ServiceUnavailableError",
    "PreviewUnavailableError",
];

/// The error bodies the REST routes answer: a key operations name them by,
/// the status, the error names that come with it, and `retryable`.
const ERRORS: [(&str, u16, &[&str], bool); 13] = [
    ("400", 400, &["ValidationError"], false),
    ("401", 401, &["AuthenticationError"], false),
    ("403", 403, &["ValidationError"], false),
    ("404", 404, &["ContainerNotFoundError"], false),
    (
        "404-file",
        404,
        &["ContainerNotFoundError", "FileNotFoundError"],
        false,
    ),
    (
        "404-command",
        404,
        &["ContainerNotFoundError", "CommandNotFoundError"],
        false,
    ),
    ("409", 409, &["ValidationError"], false),
    ("413", 413, &["MessageTooLarge"], false),
    ("416", 416, &["ValidationError"], false),
    ("429", 429, &["RateLimitError"], true),
    ("431", 431, &["MessageTooLarge"], false),
    ("500", 500, &["ContainerCreationError"], false),
    ("503", 503, &["DockerDaemonError"], true),
];

fn error_kind(key: &str) -> (u16, &'static [&'static str], bool) {
    ERRORS
        .iter()
        .find(|(k, ..)| *k == key)
        .map(|(_, status, names, retryable)| (*status, *names, *retryable))
        .unwrap_or_else(|| panic!("no error kind {key}"))
}

/// `Error404File` for `404-file`.
fn error_schema_name(key: &str) -> String {
    let mut name = String::from("Error");
    for part in key.split('-') {
        let mut c = part.chars();
        if let Some(first) = c.next() {
            name.extend(first.to_uppercase());
            name.push_str(c.as_str());
        }
    }
    name
}

fn schema(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn parameter(name: &str) -> Value {
    json!({ "$ref": format!("#/components/parameters/{name}") })
}

fn header_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/headers/{name}") })
}

fn json_content(schema: Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}

fn json_response(description: &str, schema: Value) -> Value {
    json!({ "description": description, "content": json_content(schema) })
}

/// A JSON request body, with an example of a request that succeeds.
fn json_body(description: &str, required: bool, schema: Value, example: Value) -> Value {
    json!({
        "description": description,
        "required": required,
        "content": { "application/json": { "schema": schema, "example": example } },
    })
}

/// An object schema that takes exactly `properties`.
fn object(required: &[&str], properties: Value) -> Value {
    let mut o = json!({
        "type": "object",
        "additionalProperties": false,
        "properties": properties,
    });
    // JSON Schema (draft 4, OpenAPI 3.0's) wants at least one name here.
    if !required.is_empty() {
        o["required"] = json!(required);
    }
    o
}

fn kib(n: usize) -> String {
    if n.is_multiple_of(1024 * 1024) {
        format!("{} MiB", n / (1024 * 1024))
    } else {
        format!("{} KiB", n / 1024)
    }
}

/// One operation: where it is, the operation object without its error
/// responses, and the errors particular to it (key, causes).
struct Op {
    method: Method,
    path: &'static str,
    operation: Value,
    errors: Vec<(&'static str, String)>,
}

fn op(method: Method, path: &'static str, operation: Value, errors: &[(&'static str, &str)]) -> Op {
    Op {
        method,
        path,
        operation,
        errors: errors.iter().map(|(k, c)| (*k, c.to_string())).collect(),
    }
}

/// A concrete request path for a template, to classify it.
pub(crate) fn concrete(template: &str) -> String {
    template
        .replace("{sessionId}", "session-AAAAAAAAAAAAAAAAAAAAAA")
        .replace("{execId}", "e1")
}

/// The 429's causes for a route: its rate limits, the authentication limit
/// for routes that check a token, and the per-address connection cap.
fn limit_causes(route: &Route) -> Vec<&'static str> {
    let general = "the general API limit per client address was used up (--rate-limit-general)";
    let mut causes = match route.limit() {
        Limit::None => vec![],
        Limit::General => vec![general],
        Limit::Container(_) => vec![
            general,
            "the container-operation limit per client address and session was used up (--rate-limit-container)",
        ],
        Limit::Preview => vec![
            general,
            "the preview-configuration limit per client address was used up (--rate-limit-preview)",
        ],
        Limit::WebSocket => vec!["the WebSocket connection limit per client address was used up"],
    };
    if route.auth() == Auth::Token {
        causes.push(
            "the client address made too many failed token checks and is locked out for a while (--rate-limit-auth)",
        );
    }
    causes.push("the client address holds more connections than --max-connections-per-ip allows");
    causes
}

/// The error response for `key`, with its causes.
fn error_response(key: &str, causes: &str) -> Value {
    let (status, ..) = error_kind(key);
    let mut r = json_response(causes, schema(&error_schema_name(key)));
    match status {
        429 => {
            r["headers"] = json!({
                "Retry-After": header_ref("RetryAfter"),
                "X-RateLimit-Limit": header_ref("RateLimitLimit"),
                "X-RateLimit-Remaining": header_ref("RateLimitRemaining"),
                "X-RateLimit-Reset": header_ref("RateLimitReset"),
            })
        }
        416 => r["headers"] = json!({ "Content-Range": header_ref("UnsatisfiedRange") }),
        _ => {}
    }
    r
}

/// Completes an operation with what its route says (authentication, rate
/// limits) and what every request may meet (a bad `Host`, a head too large).
fn finish(op: Op) -> (String, String, Value) {
    let route = classify(&op.method, &concrete(op.path), false, None);
    assert!(
        !matches!(
            route,
            Route::NotFound { .. } | Route::MethodNotAllowed { .. }
        ),
        "{} {} is not a route",
        op.method,
        op.path
    );
    let mut operation = op.operation;
    let mut errors: Vec<(&str, String)> = op.errors;
    let mut add =
        |key: &'static str, cause: String| match errors.iter_mut().find(|(k, _)| *k == key) {
            Some((_, causes)) => {
                causes.push_str("; or ");
                causes.push_str(&cause);
            }
            None => errors.push((key, cause)),
        };
    add(
        "400",
        "the Host header is missing, repeated, or not a name this server answers to (--allowed-host)"
            .into(),
    );
    match route.auth() {
        Auth::Public => operation["security"] = json!([]),
        Auth::Token => add(
            "401",
            "API tokens are configured and the request carries none, or not a valid one \
             (`Authorization: Bearer TOKEN`)"
                .into(),
        ),
        Auth::Preview => unreachable!("preview routes are not in the REST API"),
    }
    for cause in limit_causes(&route) {
        add("429", cause.into());
    }
    add(
        "431",
        format!(
            "the request line and headers exceed {} bytes",
            crate::limits::size::MAX_HEAD_BYTES
        ),
    );
    let responses = operation["responses"]
        .as_object_mut()
        .expect("every operation has responses");
    for (key, causes) in errors {
        let (status, ..) = error_kind(key);
        let mut text = causes;
        if let Some(first) = text.get(..1) {
            let upper = first.to_uppercase();
            text.replace_range(..1, &upper);
        }
        text.push('.');
        let previous = responses.insert(status.to_string(), error_response(key, &text));
        assert!(
            previous.is_none(),
            "{} {}: {status} twice",
            op.method,
            op.path
        );
    }
    sort_responses(responses);
    (
        op.path.to_string(),
        op.method.as_str().to_ascii_lowercase(),
        operation,
    )
}

fn sort_responses(responses: &mut Map<String, Value>) {
    let mut all: Vec<(String, Value)> = std::mem::take(responses).into_iter().collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    responses.extend(all);
}

/// `HEAD`: every `GET` route answers it too, with the same status and
/// headers and no body.
fn head_of(get: &Value) -> Value {
    let mut head = get.clone();
    let id = get["operationId"].as_str().unwrap_or_default();
    head["operationId"] = Value::from(format!("{id}Head"));
    head["summary"] = Value::from(format!(
        "{} (headers only)",
        get["summary"].as_str().unwrap_or_default()
    ));
    head["description"] = Value::from(format!(
        "`HEAD` of `{id}`: the same status and headers, without a body."
    ));
    if let Some(responses) = head["responses"].as_object_mut() {
        for r in responses.values_mut() {
            if let Some(r) = r.as_object_mut() {
                r.remove("content");
                r.remove("links");
            }
        }
    }
    head
}

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for op in operations() {
        let params = path_parameters(op.path);
        let (path, method, operation) = finish(op);
        let item = paths
            .entry(path)
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("a path item is an object");
        if !params.is_empty() {
            item.insert("parameters".into(), Value::Array(params));
        }
        item.insert(method, operation);
    }
    for item in paths.values_mut() {
        if let Some(get) = item.get("get") {
            let head = head_of(get);
            item["head"] = head;
        }
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Claude Studio",
            "version": env!("CARGO_PKG_VERSION"),
            "description": info_description(),
            "license": { "name": "MIT" },
        },
        "tags": [
            { "name": "meta", "description": "The server itself: health, this document, metrics." },
            { "name": "sessions", "description": "Sessions: one hardened container each, owned by the API token that created it." },
            { "name": "images", "description": "The images a session may be created from." },
            { "name": "preview", "description": "The live preview of an app running in a session." },
            { "name": "commands", "description": "Commands run in a session apart from its terminal, with exit codes and separate stdout and stderr." },
            { "name": "files", "description": format!(
                "A session's files, reached as the session user would: only under {}. Paths are absolute, \
                 without `..`, at most {MAX_PATH_BYTES} bytes; a symlink never leads out of its place.",
                crate::runtime::files::PLACES.join(", ")) },
            { "name": "events", "description": "What happened in a session that a client may have missed." },
        ],
        "security": [{ "bearer": [] }],
        "paths": paths,
        "components": components(),
    })
}

fn info_description() -> String {
    format!(
        "Isolated Docker workspaces: a session is one hardened container, with a terminal, commands, \
files and a live preview. This document covers the REST API. The terminal is a WebSocket on `/` and \
`/ws` (a `GET /ws` without an upgrade answers a JSON banner); the studio page is served on `/`, \
`/s/SESSION` and `/assets/`; previews are under `/preview/SESSION/` and on preview host names. None of \
those are described here.\n\n\
**Authentication.** When the server has API tokens, every operation here except `GET /api/health` and \
`GET /api/openapi.json` needs `Authorization: Bearer TOKEN` (401 otherwise). Each token is an owner: it \
sees and uses only its own sessions; another owner's session answers 404, as an unknown one does. \
Without tokens configured, no operation needs one.\n\n\
**Rate limits.** Per client address, `N` per window: the general API limit, container operations \
(create and remove, per session) and preview configuration, each set by a flag. A limited response \
carries `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` (Unix seconds) of the \
tightest limit; a refusal is a 429 `RateLimitError` with `Retry-After` (seconds). Failed token checks \
count against an authentication limit that locks the address out for a while.\n\n\
**Requests.** JSON bodies are strict: an unknown field, a wrong type or a value out of range is a 400 \
`ValidationError` naming the field, and `null` stands for an optional field's absence. A JSON body \
may be at most {body} ({exec} for commands and their input); a request with no body and no JSON \
`Content-Type` means `{{}}`, all defaults, and a body sent without a content type is read as JSON all \
the same. Query strings are strict too: a parameter an operation does not take, a repeated one or a \
malformed value is a 400. Every `GET` also answers `HEAD`. A state-changing request (not `GET` or \
`HEAD`) under `/api/` that carries an `Origin` this server does not allow is refused with 403 \
(`--allowed-origin`, `--cors-origin`). An error answered to a request that carries a body closes \
the connection (`Connection: close`): the body may not have been read.\n\n\
**Errors.** Every error is JSON: `{{\"error\", \"message\", \"retryable\", \"statusCode\"}}`, where \
`error` names the kind (`ValidationError` with 400, 403, 405, 409 or 416; `AuthenticationError` 401; \
`ContainerNotFoundError`, `FileNotFoundError`, `CommandNotFoundError` 404; `MessageTooLarge` 413 or \
431; `RateLimitError` 429; `ContainerCreationError` 500; `DockerDaemonError` 503). A method a path does \
not take is a 405 with `Allow`; a path that is no route is a 404.",
        body = kib(crate::api::body::MAX_BODY_BYTES),
        exec = kib(crate::api::exec::MAX_EXEC_BODY),
    )
}

/// The path-item parameters of a template (its path segments).
fn path_parameters(path: &str) -> Vec<Value> {
    let mut params = Vec::new();
    if path.contains("{sessionId}") {
        params.push(parameter("SessionId"));
    }
    if path.contains("{execId}") {
        params.push(parameter("ExecId"));
    }
    params
}

/// Links from a new session to what can be done with it (for clients that
/// follow them, and for stateful testing).
fn session_links() -> Value {
    let mut links = Map::new();
    for id in [
        "getSession",
        "removeSession",
        "listCommands",
        "startCommand",
        "getFileInfo",
        "removeFile",
        "readFile",
        "writeFile",
        "makeDirectory",
        "moveFile",
        "downloadArchive",
        "uploadArchive",
        "listEvents",
    ] {
        links.insert(
            id.to_string(),
            json!({ "operationId": id, "parameters": { "sessionId": "$response.body#/sessionId" } }),
        );
    }
    Value::Object(links)
}

fn command_links() -> Value {
    let mut links = Map::new();
    for id in ["getCommand", "killCommand", "sendCommandInput"] {
        links.insert(
            id.to_string(),
            json!({ "operationId": id, "parameters": {
                "sessionId": "$request.path.sessionId",
                "execId": "$response.body#/execId",
            } }),
        );
    }
    Value::Object(links)
}

fn binary() -> Value {
    json!({ "type": "string", "format": "binary" })
}

fn operations() -> Vec<Op> {
    let mut ops = meta_operations();
    ops.extend(session_operations());
    ops.extend(command_operations());
    ops.extend(file_operations());
    ops
}

fn meta_operations() -> Vec<Op> {
    vec![
        op(
            Method::GET,
            "/api/health",
            json!({
                "operationId": "getHealth",
                "tags": ["meta"],
                "summary": "Whether the server is up, and whether it reaches its container engine",
                "description": "Never needs a token and is never rate limited, and answers 200 whenever \
                    the server runs, so that a load balancer can tell \"up but degraded\" (the engine \
                    does not answer) from \"down\".",
                "responses": { "200": json_response("The server's state.", schema("Health")) },
            }),
            &[],
        ),
        op(
            Method::GET,
            "/api/openapi.json",
            json!({
                "operationId": "getOpenApi",
                "tags": ["meta"],
                "summary": "This document",
                "responses": { "200": json_response(
                    "The REST API as OpenAPI 3.0.3.",
                    json!({ "type": "object", "required": ["openapi", "info", "paths"] }),
                ) },
            }),
            &[],
        ),
        op(
            Method::GET,
            "/metrics",
            json!({
                "operationId": "getMetrics",
                "tags": ["meta"],
                "summary": "Prometheus metrics",
                "description": "The server's gauges and counters in the Prometheus text exposition \
                    format 0.0.4 (`text/plain; version=0.0.4; charset=utf-8`).",
                "responses": { "200": {
                    "description": "The metrics, one `# HELP`, `# TYPE` and sample per metric.",
                    "content": { "text/plain": { "schema": { "type": "string" } } },
                } },
            }),
            &[],
        ),
        op(
            Method::GET,
            "/api/images",
            json!({
                "operationId": "listImages",
                "tags": ["images"],
                "summary": "The images a session may be created from",
                "responses": { "200": json_response("The default image, the allowed patterns and the allowed images the engine holds.", schema("Images")) },
            }),
            &[("503", "the container engine does not answer")],
        ),
    ]
}

fn session_operations() -> Vec<Op> {
    vec![
        op(
            Method::GET,
            "/api/containers",
            json!({
                "operationId": "listSessions",
                "tags": ["sessions"],
                "summary": "The caller's sessions",
                "description": "Every session of the caller's token, with its container's state as \
                    the engine reports it now.",
                "responses": { "200": json_response(
                    "The sessions (an empty array when there are none).",
                    json!({ "type": "array", "items": schema("SessionInfo") }),
                ) },
            }),
            &[(
                "503",
                "the container engine does not answer (or, just after a restart, the sessions of the \
                 previous run are not restored yet)",
            )],
        ),
        op(
            Method::POST,
            "/api/containers",
            json!({
                "operationId": "createSession",
                "tags": ["sessions"],
                "summary": "Create a session",
                "description": "Creates a session: a hardened container from `image` (pulled when the \
                    engine lacks it), or one from the warm pool. Waits until the container runs. \
                    Naming an existing session of the caller's in `sessionId` returns it instead (a \
                    safe retry). Each owner may hold at most --max-sessions-per-owner sessions \
                    (default 20); beyond that the create is a 429 with `Retry-After`.",
                "requestBody": json_body(
                    "What to create. No body (and no JSON Content-Type) means all defaults.",
                    false,
                    schema("CreateRequest"),
                    json!({ "cols": 120, "rows": 40, "env": { "NODE_ENV": "development" } }),
                ),
                "responses": { "200": {
                    "description": "The session, running.",
                    "content": json_content(schema("Created")),
                    "links": session_links(),
                } },
            }),
            &[
                (
                    "400",
                    "the body is not a JSON object with the fields of `CreateRequest`, or a value is \
                     refused: an image reference that is malformed or not allowed (--allowed-image), a \
                     `workspaceDir` outside the workspace roots, a terminal size or an environment \
                     variable out of bounds",
                ),
                ("403", "the request carries an `Origin` this server does not allow"),
                ("413", &format!("the body is larger than {}", kib(crate::api::body::MAX_BODY_BYTES))),
                ("429", "the owner holds --max-sessions-per-owner sessions already"),
                (
                    "500",
                    "the container could not be created: the image does not exist or cannot be \
                     pulled, or the engine refused the container",
                ),
                ("503", "the container engine does not answer"),
            ],
        ),
        op(
            Method::GET,
            "/api/containers/{sessionId}",
            json!({
                "operationId": "getSession",
                "tags": ["sessions"],
                "summary": "Inspect a session",
                "responses": { "200": json_response("The session, with its container's state now.", schema("SessionInfo")) },
            }),
            &[
                ("404", "no session of the caller's has this id, or its container no longer exists"),
                ("503", "the container engine does not answer"),
            ],
        ),
        op(
            Method::DELETE,
            "/api/containers/{sessionId}",
            json!({
                "operationId": "removeSession",
                "tags": ["sessions"],
                "summary": "Remove a session and its container",
                "description": "Removes the container (and everything in it), ends the session's \
                    commands and terminal, and forgets the session. Runs to its end even if the \
                    client goes away.",
                "responses": { "200": json_response("The session is gone.", schema("SessionRemoved")) },
            }),
            &[
                ("403", "the request carries an `Origin` this server does not allow"),
                ("404", "no session of the caller's has this id"),
                ("503", "the container engine does not answer (the session stays)"),
            ],
        ),
        op(
            Method::POST,
            "/api/preview/configure",
            json!({
                "operationId": "configurePreview",
                "tags": ["preview"],
                "summary": "Point a session's preview at a port of its container",
                "description": "Clients name a port of the session's own container, never a host or \
                    a URL. The answer's URLs carry a short-lived access token when the server has API \
                    tokens.",
                "requestBody": json_body(
                    "The session and the port.",
                    true,
                    schema("PreviewRequest"),
                    json!({ "sessionId": EXAMPLE_SESSION_ID, "port": 3000 }),
                ),
                "responses": { "200": json_response("Where the preview now points.", schema("PreviewConfigured")) },
            }),
            &[
                (
                    "400",
                    "the body is not a JSON object with exactly `sessionId` and `port`, or the port is \
                     not 1 to 65535",
                ),
                ("403", "the request carries an `Origin` this server does not allow"),
                ("404", "no session of the caller's has this id"),
                ("413", &format!("the body is larger than {}", kib(crate::api::body::MAX_BODY_BYTES))),
                ("503", "the preview port could not be recorded"),
            ],
        ),
        op(
            Method::GET,
            "/api/containers/{sessionId}/events",
            json!({
                "operationId": "listEvents",
                "tags": ["events"],
                "summary": "The session's events after a sequence number (long-poll)",
                "description": format!(
                    "The session's events with a `seq` greater than `since`, oldest first: each is \
                    the WebSocket message it was sent as, with `seq` added. The log keeps the latest \
                    {} events and at most {} of them; `missed` says some after `since` were dropped \
                    before being read. With `wait`, when there is nothing yet, the answer waits up to \
                    that many seconds (at most {}) for the next event. Ask again with `since` set to \
                    `next`.",
                    crate::events::MAX_EVENTS,
                    kib(crate::events::MAX_BYTES),
                    crate::ops::events::MAX_WAIT.as_secs(),
                ),
                "parameters": [parameter("Since"), parameter("Wait")],
                "responses": { "200": {
                    "description": "The events (possibly none).",
                    "headers": { "Cache-Control": header_ref("NoStore") },
                    "content": json_content(schema("Events")),
                } },
            }),
            &[
                (
                    "400",
                    "`since` is not a whole number from 0 to 18446744073709551615, `wait` is not a \
                     number of seconds from 0, or the query has another parameter",
                ),
                ("404", "no session of the caller's has this id"),
                ("503", "the sessions of the previous run are not restored yet"),
            ],
        ),
    ]
}

fn command_operations() -> Vec<Op> {
    let exec_body = kib(crate::api::exec::MAX_EXEC_BODY);
    vec![
        op(
            Method::GET,
            "/api/containers/{sessionId}/exec",
            json!({
                "operationId": "listCommands",
                "tags": ["commands"],
                "summary": "The session's running commands",
                "responses": { "200": json_response("The running commands, oldest first.", schema("CommandList")) },
            }),
            &[
                ("404", "no session of the caller's has this id"),
                ("503", "the sessions of the previous run are not restored yet"),
            ],
        ),
        op(
            Method::POST,
            "/api/containers/{sessionId}/exec",
            json!({
                "operationId": "startCommand",
                "tags": ["commands"],
                "summary": "Run a command in the session",
                "description": format!(
                    "Runs a command apart from the terminal, without a TTY, as the session user, in \
                    its own process group. By default the answer waits for the command to end and \
                    is its `Outcome`. With `Accept: application/x-ndjson` the answer streams at once, \
                    one JSON object per line: `exec_started`, then `exec_output` pieces, then \
                    `exec_exit` (a client that stops reading for long loses the stream; the command \
                    goes on). At most {} commands run at once in a session; at most {} of output is \
                    kept per command ({} per session) for `GET`, and the latest {} finished commands \
                    are remembered. A command that reads stdin waits for `POST .../input` unless \
                    `stdin` is given.",
                    crate::exec::MAX_RUNNING,
                    kib(crate::exec::MAX_KEPT),
                    kib(crate::exec::MAX_SESSION_KEPT),
                    crate::exec::MAX_FINISHED,
                ),
                "requestBody": json_body(
                    "The command.",
                    true,
                    schema("ExecRequest"),
                    json!({ "cmd": ["sh", "-c", "echo hello"], "timeout": 30 }),
                ),
                "responses": { "200": {
                    "description": "The command's outcome (it has ended), or, with \
                        `Accept: application/x-ndjson`, its messages as JSON lines (each line one \
                        `ExecStreamLine`).",
                    "content": {
                        "application/json": { "schema": schema("Outcome") },
                        "application/x-ndjson": { "schema": schema("ExecStreamLine") },
                    },
                    "links": command_links(),
                } },
            }),
            &[
                (
                    "400",
                    "the body is not a JSON object with the fields of `ExecRequest`, or a value is \
                     refused (an empty `cmd`, a relative `cwd`, a `timeout` out of range, a bad \
                     environment variable, a malformed `execId`)",
                ),
                ("409", "the `execId` is in use in this session"),
                ("403", "the request carries an `Origin` this server does not allow"),
                ("404", "no session of the caller's has this id, or its container no longer exists"),
                ("413", &format!("the body is larger than {exec_body}")),
                (
                    "429",
                    &format!(
                        "the session runs {} commands already (`X-RateLimit-Limit` says so, \
                         `Retry-After` is 1)",
                        crate::exec::MAX_RUNNING
                    ),
                ),
                ("503", "the container engine does not answer"),
            ],
        ),
        op(
            Method::GET,
            "/api/containers/{sessionId}/exec/{execId}",
            json!({
                "operationId": "getCommand",
                "tags": ["commands"],
                "summary": "A command's state and kept output",
                "description": "Works while the command runs (its output so far) and after it ended.",
                "responses": { "200": json_response("The command's outcome so far.", schema("Outcome")) },
            }),
            &[
                (
                    "404-command",
                    &format!(
                        "no session of the caller's has this id, or the session has no command with \
                         this id (finished ones are forgotten beyond the latest {})",
                        crate::exec::MAX_FINISHED
                    ),
                ),
                ("503", "the sessions of the previous run are not restored yet"),
            ],
        ),
        op(
            Method::DELETE,
            "/api/containers/{sessionId}/exec/{execId}",
            json!({
                "operationId": "killCommand",
                "tags": ["commands"],
                "summary": "Signal a running command",
                "description": "Sends the signal to the command's whole process group (`SIGKILL` when \
                    none is named). The command's end comes as its `exec_exit`.",
                "parameters": [parameter("Signal")],
                "responses": { "200": json_response("The signal was sent.", schema("SignalSent")) },
            }),
            &[
                (
                    "400",
                    "the signal is not one of the allowed ones, or the query has another parameter",
                ),
                ("409", "the command has ended already"),
                ("403", "the request carries an `Origin` this server does not allow"),
                ("404-command", "no session of the caller's has this id, or the session has no command with this id"),
                ("503", "the container engine does not answer"),
            ],
        ),
        op(
            Method::POST,
            "/api/containers/{sessionId}/exec/{execId}/input",
            json!({
                "operationId": "sendCommandInput",
                "tags": ["commands"],
                "summary": "Write to a running command's stdin",
                "description": "Writes `data` (text, or bytes in base64) to the command's stdin, then \
                    closes it when `eof` is true. No body means nothing to write.",
                "requestBody": json_body(
                    "What to write.",
                    false,
                    schema("ExecInput"),
                    json!({ "data": "hello\n", "eof": true }),
                ),
                "responses": { "204": { "description": "Written (queued for the command)." } },
            }),
            &[
                (
                    "400",
                    "the body is not a JSON object with the fields of `ExecInput`, or `data` is not \
                     valid base64 with `encoding: base64`",
                ),
                ("409", "the command does not take input any more (its stdin is closed, or it ended)"),
                ("403", "the request carries an `Origin` this server does not allow"),
                ("404-command", "no session of the caller's has this id, or the session has no command with this id"),
                ("413", &format!("the body is larger than {exec_body}")),
                (
                    "429",
                    "the command is not reading its input and its queue is full: the input was \
                     dropped (`Retry-After` is 1)",
                ),
                ("503", "the sessions of the previous run are not restored yet"),
            ],
        ),
    ]
}

fn file_operations() -> Vec<Op> {
    let files_fail = "the container engine does not answer, or the session's files failed";
    let not_found = "no session of the caller's has this id or its container is gone, or the path \
                     (or a directory on the way to it) does not exist";
    let origin = "the request carries an `Origin` this server does not allow";
    let denied = "the session user may not do this (file permissions)";
    let bad_path = "`path` is missing or not a path in the session's places (relative, with `..`, \
                    outside them, or leading out of them through a symlink), or the query has another \
                    parameter";
    let full = "the place is full";
    vec![
        op(
            Method::GET,
            "/api/containers/{sessionId}/files",
            json!({
                "operationId": "getFileInfo",
                "tags": ["files"],
                "summary": "Stat a file, or list a directory",
                "description": format!(
                    "A file's entry, or a directory's with its entries sorted by name (with \
                    `recursive`: every entry below it, named by its path below the directory). A \
                    listing holds at most {MAX_LIST} entries; beyond that it says `truncated`. \
                    Symlinks in a listing are not followed; the path itself is.",
                    MAX_LIST = crate::runtime::files::MAX_LIST,
                ),
                "parameters": [parameter("Path"), parameter("Recursive")],
                "responses": { "200": json_response("The file or the directory.", schema("Stat")) },
            }),
            &[
                ("400", bad_path),
                ("403", denied),
                ("404-file", not_found),
                ("409", "a file stands where the path needs a directory"),
                ("503", files_fail),
            ],
        ),
        op(
            Method::DELETE,
            "/api/containers/{sessionId}/files",
            json!({
                "operationId": "removeFile",
                "tags": ["files"],
                "summary": "Remove a file, a symlink or a directory",
                "description": "A directory must be empty unless `recursive` is true. A symlink is \
                    removed itself, never what it points to. The places themselves cannot be removed.",
                "parameters": [parameter("PathBelow"), parameter("Recursive")],
                "responses": { "200": json_response("Removed.", schema("FileRemoved")) },
            }),
            &[
                ("400", &format!("{bad_path}, or it names one of the places itself")),
                ("403", &format!("{origin}, or {denied}")),
                ("404-file", not_found),
                (
                    "409",
                    "the directory is not empty (and `recursive` is not true), or a file stands \
                     where the path needs a directory",
                ),
                ("503", files_fail),
            ],
        ),
        op(
            Method::GET,
            "/api/containers/{sessionId}/files/content",
            json!({
                "operationId": "readFile",
                "tags": ["files"],
                "summary": "Read a file",
                "description": "The file's bytes. One `Range` (`bytes=A-B`, `bytes=A-`, `bytes=-N`) \
                    answers 206 with that part; several ranges, or a `Range` that is not in bytes, \
                    answer the whole file.",
                "parameters": [parameter("Path"), parameter("Range")],
                "responses": {
                    "200": {
                        "description": "The whole file.",
                        "headers": {
                            "Content-Length": header_ref("ContentLength"),
                            "Accept-Ranges": header_ref("AcceptRanges"),
                            "Cache-Control": header_ref("NoStore"),
                        },
                        "content": { "application/octet-stream": { "schema": binary() } },
                    },
                    "206": {
                        "description": "The range asked for.",
                        "headers": {
                            "Content-Length": header_ref("ContentLength"),
                            "Content-Range": header_ref("ContentRange"),
                            "Accept-Ranges": header_ref("AcceptRanges"),
                            "Cache-Control": header_ref("NoStore"),
                        },
                        "content": { "application/octet-stream": { "schema": binary() } },
                    },
                },
            }),
            &[
                ("400", bad_path),
                ("403", denied),
                ("404-file", not_found),
                (
                    "409",
                    "the path is a directory (list it, or download it as an archive) or not a \
                     regular file, or a file stands where the path needs a directory",
                ),
                ("416", "the `Range` is malformed or starts beyond the end of the file"),
                ("503", files_fail),
            ],
        ),
        op(
            Method::PUT,
            "/api/containers/{sessionId}/files/content",
            json!({
                "operationId": "writeFile",
                "tags": ["files"],
                "summary": "Write a file",
                "description": "Writes the body as the file's content, atomically: readers see the \
                    old file or the new one, never a part. An existing file keeps its permission \
                    bits; a new one is 0644, the session user's. At most --max-file-size bytes \
                    (default 100 MiB). With `parents`, missing directories on the way are made.",
                "parameters": [parameter("FilePath"), parameter("Parents")],
                "requestBody": {
                    "description": "The file's new content (any bytes; an empty body makes an empty file).",
                    "required": false,
                    "content": { "application/octet-stream": { "schema": binary() } },
                },
                "responses": {
                    "200": json_response("An existing file was replaced.", schema("FileWritten")),
                    "201": json_response("The file was created.", schema("FileWritten")),
                },
            }),
            &[
                ("400", &format!("{bad_path}, or the body could not be read")),
                ("403", &format!("{origin}, or {denied}")),
                ("404-file", "no session of the caller's has this id or its container is gone, or the directory to write in does not exist (and `parents` is not true)"),
                (
                    "409",
                    "the path is a directory, or a file stands where the path needs a directory",
                ),
                ("413", &format!("the content exceeds --max-file-size, or {full}")),
                ("503", files_fail),
            ],
        ),
        op(
            Method::POST,
            "/api/containers/{sessionId}/files/mkdir",
            json!({
                "operationId": "makeDirectory",
                "tags": ["files"],
                "summary": "Make a directory",
                "description": "Without `parents`, the directory must not exist and its parent must. \
                    With `parents`, missing directories on the way are made and an existing directory \
                    is no error. The request has no body (one sent is ignored).",
                "parameters": [parameter("Path"), parameter("Parents")],
                "responses": {
                    "200": json_response("The directory was there already (with `parents`, or a place itself).", schema("DirectoryMade")),
                    "201": json_response("The directory was made.", schema("DirectoryMade")),
                },
            }),
            &[
                ("400", bad_path),
                ("403", &format!("{origin}, or {denied}")),
                ("404-file", "no session of the caller's has this id or its container is gone, or the parent directory does not exist (and `parents` is not true)"),
                (
                    "409",
                    "the path exists already (without `parents`), or a file stands where the path \
                     needs a directory",
                ),
                ("413", full),
                ("503", files_fail),
            ],
        ),
        op(
            Method::POST,
            "/api/containers/{sessionId}/files/move",
            json!({
                "operationId": "moveFile",
                "tags": ["files"],
                "summary": "Move or rename a file or directory",
                "description": "Renames `from` to `to`, replacing a file at `to`. Between places (which \
                    are different filesystems) only a file moves, copied then removed.",
                "requestBody": json_body(
                    "Where from and where to.",
                    true,
                    schema("MoveRequest"),
                    json!({ "from": "/workspace/draft.txt", "to": "/workspace/final.txt" }),
                ),
                "responses": { "200": json_response("Moved.", schema("FileMoved")) },
            }),
            &[
                (
                    "400",
                    "the body is not a JSON object with exactly `from` and `to`, or one of them is not \
                     a path in the session's places (or names a place itself)",
                ),
                ("403", &format!("{origin}, or {denied}")),
                ("404-file", "no session of the caller's has this id or its container is gone, or `from` (or the directory of `to`) does not exist"),
                (
                    "409",
                    "the move is not possible as things are (a directory onto a file or a non-empty \
                     directory, a directory into itself, a directory between places, a file where a \
                     directory is needed)",
                ),
                (
                    "413",
                    &format!(
                        "the body is larger than {}, or {full}",
                        kib(crate::api::body::MAX_BODY_BYTES)
                    ),
                ),
                ("503", files_fail),
            ],
        ),
        op(
            Method::GET,
            "/api/containers/{sessionId}/files/archive",
            json!({
                "operationId": "downloadArchive",
                "tags": ["files"],
                "summary": "Download a directory as a tar archive",
                "description": "The directory's files, directories and symlinks (not followed) as a \
                    tar, streamed. At most --max-file-size bytes of file content (default 100 MiB). \
                    What fails before the first bytes are sent is answered as an error; a failure \
                    later (the limit reached further on, a read error) cuts the body short, never a \
                    tar that looks whole.",
                "parameters": [parameter("Path")],
                "responses": { "200": {
                    "description": "The archive, named after the directory.",
                    "headers": {
                        "Content-Disposition": header_ref("ArchiveDisposition"),
                        "Cache-Control": header_ref("NoStore"),
                    },
                    "content": { "application/x-tar": { "schema": binary() } },
                } },
            }),
            &[
                ("400", bad_path),
                ("403", denied),
                ("404-file", not_found),
                ("409", "the path is a file (read it with /files/content), or a file stands where the path needs a directory"),
                ("413", "the directory holds more than --max-file-size bytes of files (when found before the first bytes are sent)"),
                ("503", files_fail),
            ],
        ),
        op(
            Method::PUT,
            "/api/containers/{sessionId}/files/archive",
            json!({
                "operationId": "uploadArchive",
                "tags": ["files"],
                "summary": "Unpack a tar archive into a directory",
                "description": "Unpacks the tar in the body into the directory (made, with its \
                    parents, if missing). Files, directories and symlinks are taken; an entry that \
                    would land outside the directory, a hard link or a device is refused. At most \
                    --max-file-size bytes of file content (default 100 MiB). Entries unpacked before \
                    a failure stay.",
                "parameters": [parameter("Path")],
                "requestBody": {
                    "description": "A tar archive (an empty body unpacks nothing).",
                    "required": false,
                    "content": { "application/x-tar": { "schema": binary() } },
                },
                "responses": { "200": json_response("Unpacked.", schema("ArchiveUnpacked")) },
            }),
            &[
                (
                    "400",
                    &format!(
                        "{bad_path}, or the body is not a tar archive, is broken, or holds an entry \
                         that is refused"
                    ),
                ),
                ("403", &format!("{origin}, or {denied}")),
                ("404-file", "no session of the caller's has this id or its container is gone"),
                ("409", "a file stands where the archive needs a directory"),
                ("413", &format!("the archive exceeds --max-file-size, or {full}")),
                ("503", files_fail),
            ],
        ),
    ]
}

fn components() -> Value {
    json!({
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "An API token of the server's (--api-token and friends). Needed only \
                    when the server has tokens configured.",
            },
        },
        "parameters": parameters(),
        "headers": headers(),
        "schemas": schemas(),
    })
}

fn parameters() -> Value {
    let signal_pattern = signal_pattern();
    json!({
        "SessionId": {
            "name": "sessionId",
            "in": "path",
            "required": true,
            "description": "The session's id, as `createSession` answered it.",
            "example": EXAMPLE_SESSION_ID,
            "schema": { "type": "string", "pattern": SESSION_ID_PATTERN },
        },
        "ExecId": {
            "name": "execId",
            "in": "path",
            "required": true,
            "description": "The command's id: the client's `execId`, or the one the server made.",
            "schema": { "type": "string", "pattern": EXEC_ID_PATTERN },
        },
        "Path": {
            "name": "path",
            "in": "query",
            "required": true,
            "description": "An absolute path in the session's files.",
            "example": "/workspace",
            "schema": schema("SessionPath"),
        },
        "FilePath": {
            "name": "path",
            "in": "query",
            "required": true,
            "description": "An absolute path of a file in the session's files, below one of the places.",
            "example": "/workspace/notes.txt",
            "schema": schema("SessionFilePath"),
        },
        "PathBelow": {
            "name": "path",
            "in": "query",
            "required": true,
            "description": "An absolute path in the session's files, below one of the places.",
            "example": "/workspace/notes.txt",
            "schema": schema("SessionPathBelow"),
        },
        "Recursive": {
            "name": "recursive",
            "in": "query",
            "required": false,
            "description": "List every entry below the directory / remove a directory with all in it.",
            "schema": { "type": "boolean", "default": false },
        },
        "Parents": {
            "name": "parents",
            "in": "query",
            "required": false,
            "description": "Make missing directories on the way.",
            "schema": { "type": "boolean", "default": false },
        },
        "Since": {
            "name": "since",
            "in": "query",
            "required": false,
            "description": "Answer the events after this `seq` (0: all kept).",
            "schema": { "type": "integer", "minimum": 0, "maximum": u64::MAX, "default": 0 },
        },
        "Wait": {
            "name": "wait",
            "in": "query",
            "required": false,
            "description": format!(
                "Seconds to wait for an event when there is none after `since` yet (more than {} \
                counts as {}). Absent: answer at once.",
                crate::ops::events::MAX_WAIT.as_secs(),
                crate::ops::events::MAX_WAIT.as_secs(),
            ),
            "schema": { "type": "number", "minimum": 0 },
        },
        "Signal": {
            "name": "signal",
            "in": "query",
            "required": false,
            "description": format!(
                "The signal, by name (with or without `SIG`, any case) or number: {}. Absent: \
                `SIGKILL`.",
                SIGNALS
                    .iter()
                    .map(|(n, v)| format!("SIG{n} ({v})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "schema": { "type": "string", "pattern": signal_pattern },
        },
        "Range": {
            "name": "Range",
            "in": "header",
            "required": false,
            "description": "One byte range: `bytes=A-B`, `bytes=A-` or `bytes=-N`.",
            "schema": { "type": "string" },
        },
    })
}

/// The names (any case, `SIG` optional) and numbers `parse_signal` takes.
fn signal_pattern() -> String {
    let any_case = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphabetic() {
                    format!("[{}{}]", c.to_ascii_uppercase(), c.to_ascii_lowercase())
                } else {
                    c.to_string()
                }
            })
            .collect()
    };
    let names: Vec<String> = SIGNALS.iter().map(|(n, _)| any_case(n)).collect();
    let numbers: Vec<String> = SIGNALS.iter().map(|(_, v)| v.to_string()).collect();
    format!(
        "^(?:(?:{})?(?:{})|\\+?0*(?:{}))$",
        any_case("SIG"),
        names.join("|"),
        numbers.join("|")
    )
}

fn headers() -> Value {
    json!({
        "RetryAfter": {
            "description": "Seconds to wait before trying again.",
            "required": true,
            "schema": { "type": "integer", "minimum": 1 },
        },
        "RateLimitLimit": {
            "description": "Requests the tightest limit allows per window (present when a limit applies).",
            "schema": { "type": "integer", "minimum": 1 },
        },
        "RateLimitRemaining": {
            "description": "Requests left in the window.",
            "schema": { "type": "integer", "minimum": 0 },
        },
        "RateLimitReset": {
            "description": "When the window ends and the whole budget is back (Unix seconds).",
            "schema": { "type": "integer", "minimum": 0 },
        },
        "ContentLength": {
            "description": "Bytes in the body.",
            "schema": { "type": "integer", "minimum": 0 },
        },
        "ContentRange": {
            "description": "The part sent: `bytes A-B/SIZE`.",
            "required": true,
            "schema": { "type": "string", "pattern": "^bytes [0-9]+-[0-9]+/[0-9]+$" },
        },
        "UnsatisfiedRange": {
            "description": "The file's size: `bytes */SIZE`.",
            "required": true,
            "schema": { "type": "string", "pattern": "^bytes \\*/[0-9]+$" },
        },
        "AcceptRanges": {
            "description": "`bytes`: a `Range` is honoured.",
            "schema": { "type": "string", "enum": ["bytes"] },
        },
        "NoStore": {
            "description": "`no-store`: the answer is not to be cached.",
            "schema": { "type": "string", "enum": ["no-store"] },
        },
        "ArchiveDisposition": {
            "description": "`attachment; filename=\"NAME.tar\"`, NAME the directory's (or `archive`).",
            "schema": { "type": "string", "pattern": "^attachment; filename=\"[A-Za-z0-9._-]+\\.tar\"$" },
        },
    })
}

fn schemas() -> Value {
    let mut m = Map::new();
    let mut put = |name: &str, v: Value| {
        m.insert(name.to_string(), v);
    };
    put(
        "Error",
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["error", "message", "retryable", "statusCode"],
            "description": "Every error the REST API answers.",
            "properties": {
                "error": { "type": "string", "enum": ERROR_NAMES, "description": "The kind of error." },
                "message": { "type": "string", "description": "What went wrong, for people." },
                "retryable": { "type": "boolean", "description": "Whether the same request may succeed later." },
                "statusCode": { "type": "integer", "minimum": 400, "maximum": 599, "description": "The HTTP status, repeated." },
            },
        }),
    );
    for (key, status, names, retryable) in ERRORS {
        put(
            &error_schema_name(key),
            json!({ "allOf": [schema("Error"), {
                "type": "object",
                "properties": {
                    "error": { "type": "string", "enum": names },
                    "retryable": { "type": "boolean", "enum": [retryable] },
                    "statusCode": { "type": "integer", "enum": [status] },
                },
            }] }),
        );
    }
    meta_schemas(&mut put);
    session_schemas(&mut put);
    command_schemas(&mut put);
    file_schemas(&mut put);
    event_schemas(&mut put);
    Value::Object(m)
}

fn env_schema(what: &str) -> Value {
    json!({
        "type": "object",
        "nullable": true,
        "maxProperties": MAX_ENV_VARS,
        "description": format!(
            "Environment variables for {what}. Names: letters, digits and `_`, not starting with a \
            digit, at most {MAX_ENV_KEY} bytes; values: at most {MAX_ENV_VALUE} bytes, no NUL."
        ),
        "additionalProperties": { "type": "string", "maxLength": MAX_ENV_VALUE, "pattern": "^[^\\x00]*$" },
    })
}

fn meta_schemas(put: &mut impl FnMut(&str, Value)) {
    put(
        "Health",
        object(
            &[
                "status",
                "docker",
                "uptime",
                "sessions",
                "warmPool",
                "authRequired",
            ],
            json!({
                "status": { "type": "string", "enum": ["ok", "degraded"], "description": "`degraded` while the container engine does not answer." },
                "docker": { "type": "string", "enum": ["connected", "disconnected"] },
                "uptime": { "type": "integer", "minimum": 0, "description": "Seconds since the server started." },
                "sessions": { "type": "integer", "minimum": 0, "description": "Sessions on the server (all owners)." },
                "warmPool": { "type": "integer", "minimum": 0, "description": "Pre-started containers ready in the warm pool." },
                "authRequired": { "type": "boolean", "description": "Whether the API needs a token." },
            }),
        ),
    );
    put(
        "Images",
        object(
            &["defaultImage", "allowed", "local", "fallbackImage"],
            json!({
                "defaultImage": { "type": "string", "description": "What a create that names no image gets." },
                "allowed": { "type": "array", "items": { "type": "string" }, "description": "The patterns an image must match (--allowed-image); empty: any image." },
                "local": { "type": "array", "items": { "type": "string" }, "description": "Allowed images the engine holds already (no pull), sorted." },
                "fallbackImage": { "type": "string", "nullable": true, "description": "What a create naming no image gets when the default cannot be pulled: the fallback image, when the engine holds it and it is allowed." },
            }),
        ),
    );
}

fn session_schemas(put: &mut impl FnMut(&str, Value)) {
    let dim = crate::protocol::validate::MAX_TERMINAL_DIM;
    put(
        "CreateRequest",
        json!({
            "type": "object",
            "additionalProperties": false,
            "description": "A new session. Every field is optional.",
            "properties": {
                "image": {
                    "type": "string", "nullable": true, "minLength": 1, "maxLength": MAX_IMAGE_LEN,
                    "description": "A Docker image reference (`node:20-alpine`, `registry:5000/team/app@sha256:…`) \
                        the server allows (--allowed-image). Absent: the default image.",
                },
                "workspaceDir": {
                    "type": "string", "nullable": true, "minLength": 1, "maxLength": MAX_PATH_BYTES,
                    "pattern": "^/[^\\x00]*$",
                    "description": "An existing directory of the server's machine under a workspace root \
                        (--workspace-root) to mount at /workspace. Absent: a fresh workspace.",
                },
                "sessionId": {
                    "type": "string", "nullable": true,
                    "description": "An existing session of the caller's to return instead of creating one \
                        (a safe retry). Ids are never chosen by clients: another id is ignored.",
                },
                "cols": { "type": "integer", "nullable": true, "minimum": 1, "maximum": dim, "description": "The terminal's columns (default 80)." },
                "rows": { "type": "integer", "nullable": true, "minimum": 1, "maximum": dim, "description": "The terminal's rows (default 24)." },
                "env": env_schema("the session's shell and commands"),
            },
        }),
    );
    put(
        "Created",
        object(
            &["sessionId", "containerId", "status", "image"],
            json!({
                "sessionId": { "type": "string", "pattern": SESSION_ID_PATTERN },
                "containerId": { "type": "string" },
                "status": { "type": "string", "enum": ["running"] },
                "image": { "type": "string", "description": "The image as the client named it (or the default, or the fallback)." },
            }),
        ),
    );
    put(
        "SessionInfo",
        object(
            &[
                "sessionId",
                "containerId",
                "status",
                "image",
                "createdAt",
                "ports",
            ],
            json!({
                "sessionId": { "type": "string", "pattern": SESSION_ID_PATTERN },
                "containerId": { "type": "string" },
                "status": {
                    "type": "string",
                    "enum": ["running", "paused", "restarting", "starting", "stopped", "removed"],
                    "description": "The container's state now (`removed`: it is gone).",
                },
                "image": { "type": "string" },
                "createdAt": { "type": "integer", "description": "When the session was created (Unix seconds)." },
                "previewPort": { "type": "integer", "minimum": 1, "maximum": 65535, "description": "The port the preview points at, once configured." },
                "ports": {
                    "type": "array",
                    "items": { "type": "integer", "minimum": 1, "maximum": 65535 },
                    "description": "The TCP ports something in the container listens on, ascending.",
                },
            }),
        ),
    );
    put(
        "SessionRemoved",
        object(
            &["message"],
            json!({ "message": { "type": "string", "enum": ["Container removed successfully"] } }),
        ),
    );
    put(
        "PreviewRequest",
        object(
            &["sessionId", "port"],
            json!({
                "sessionId": { "type": "string", "description": "A session of the caller's." },
                "port": { "type": "integer", "minimum": 1, "maximum": 65535, "description": "A port in the session's container." },
            }),
        ),
    );
    put(
        "PreviewConfigured",
        object(
            &["previewUrl", "targetUrl", "hostPreviewUrl", "sessionId"],
            json!({
                "previewUrl": { "type": "string", "description": "The preview under this server's origin (`/preview/SESSION/`)." },
                "targetUrl": { "type": "string", "description": "Where it points, inside the container (`http://localhost:PORT`)." },
                "hostPreviewUrl": { "type": "string", "description": "The preview on an origin of its own (`PORT-SESSION.DOMAIN`): the one to open in a browser." },
                "sessionId": { "type": "string" },
            }),
        ),
    );
}

fn command_schemas(put: &mut impl FnMut(&str, Value)) {
    let max_timeout = crate::exec::MAX_TIMEOUT.as_secs();
    let max_cmd = crate::protocol::client::MAX_CMD_BYTES;
    put(
        "ExecRequest",
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["cmd"],
            "description": "A command to run. (The path names the session; a `sessionId` in the body \
                is accepted only when it is the path's.)",
            "properties": {
                "cmd": {
                    "description": format!(
                        "An argument vector (the program first, not empty), or a string run by \
                        `/bin/sh -c`. At most {MAX_ARGS} arguments and {} in all; no NUL.",
                        kib(max_cmd)
                    ),
                    "oneOf": [
                        // Run as `/bin/sh -c CMD`: the three arguments count.
                        { "type": "string", "minLength": 1, "maxLength": max_cmd - "/bin/sh -c ".len() - 1, "pattern": "^[^\\x00]*[^\\s\\x00][^\\x00]*$" },
                        { "type": "array", "minItems": 1, "maxItems": MAX_ARGS, "items": { "type": "string", "maxLength": max_cmd - 1, "pattern": "^[^\\x00]*$" } },
                    ],
                },
                "execId": {
                    "type": "string", "nullable": true, "pattern": EXEC_ID_PATTERN,
                    "description": "The client's id for the command, not in use in the session. Absent: \
                        the server makes one (`exec-…`).",
                },
                "cwd": {
                    "type": "string", "nullable": true, "minLength": 1, "maxLength": MAX_PATH_BYTES,
                    "pattern": "^/[^\\x00]*$",
                    "description": format!("The working directory, absolute (default {DEFAULT_CWD})."),
                },
                "env": env_schema("the command"),
                "stdin": {
                    "type": "string", "nullable": true,
                    "description": "Written to stdin, which is then closed. Absent: stdin stays open \
                        for `sendCommandInput`.",
                },
                "timeout": {
                    "type": "number", "nullable": true, "minimum": 0, "exclusiveMinimum": true,
                    "maximum": max_timeout,
                    "description": "Seconds; then the command's process group is killed and it ends \
                        with `timedOut`. Absent: no timeout.",
                },
            },
        }),
    );
    let input_common = |data: Value, encoding: Value, required: &[&str]| {
        object(
            required,
            json!({
                "data": data,
                "encoding": encoding,
                "eof": { "type": "boolean", "default": false, "description": "Close stdin after `data`." },
            }),
        )
    };
    put(
        "ExecInput",
        json!({
            "description": "Bytes for a command's stdin: text, or base64 with `encoding: base64`. (The \
                path names the session and the command; `sessionId` and `execId` in the body are \
                accepted only when they are the path's.)",
            "oneOf": [
                input_common(
                    json!({ "type": "string", "default": "", "description": "Text, written as UTF-8." }),
                    json!({ "type": "string", "nullable": true, "enum": ["utf8", "utf-8", null], "description": "Absent, `null`, `utf8` or `utf-8`: `data` is text." }),
                    &[],
                ),
                input_common(
                    json!({ "type": "string", "default": "", "pattern": BASE64_PATTERN, "description": "Standard base64 with padding." }),
                    json!({ "type": "string", "enum": ["base64"] }),
                    &["encoding"],
                ),
            ],
        }),
    );
    let nullable_code = json!({ "type": "integer", "nullable": true, "minimum": 0, "description": "The exit code; `null` while running or when unknown." });
    let nullable_signal = json!({ "type": "string", "nullable": true, "pattern": "^SIG[A-Z0-9]+$", "description": "The signal an exit code over 128 stands for (`SIGKILL` for 137)." });
    put(
        "Outcome",
        object(
            &[
                "execId",
                "running",
                "exitCode",
                "signal",
                "stdout",
                "stderr",
                "truncated",
                "durationMs",
                "timedOut",
            ],
            json!({
                "execId": { "type": "string", "pattern": EXEC_ID_PATTERN },
                "running": { "type": "boolean" },
                "exitCode": nullable_code,
                "signal": nullable_signal,
                "stdout": { "type": "string", "description": "The output kept: text, or base64 when `stdoutEncoding` says so." },
                "stderr": { "type": "string" },
                "stdoutEncoding": { "type": "string", "enum": ["base64"], "description": "Present when stdout is not UTF-8." },
                "stderrEncoding": { "type": "string", "enum": ["base64"] },
                "truncated": { "type": "boolean", "description": format!("Output beyond {} per command (or the session's share) was not kept.", kib(crate::exec::MAX_KEPT)) },
                "durationMs": { "type": "integer", "minimum": 0 },
                "timedOut": { "type": "boolean" },
            }),
        ),
    );
    put(
        "CommandSummary",
        object(
            &["execId", "cmd", "startedAt", "running"],
            json!({
                "execId": { "type": "string", "pattern": EXEC_ID_PATTERN },
                "cmd": { "type": "array", "items": { "type": "string" }, "description": "The argument vector (a string `cmd` runs as `/bin/sh -c CMD`)." },
                "startedAt": { "type": "integer", "minimum": 0, "description": "Unix milliseconds." },
                "running": { "type": "boolean" },
                "exitCode": nullable_code,
                "signal": nullable_signal,
                "durationMs": { "type": "integer", "minimum": 0 },
                "timedOut": { "type": "boolean" },
            }),
        ),
    );
    put(
        "CommandList",
        object(
            &["commands"],
            json!({ "commands": { "type": "array", "items": schema("CommandSummary") } }),
        ),
    );
    put(
        "SignalSent",
        object(
            &["execId", "signal"],
            json!({
                "execId": { "type": "string" },
                "signal": { "type": "string", "description": "The signal as the request named it (`SIGKILL` when it named none)." },
            }),
        ),
    );
    put(
        "ExecStarted",
        object(
            &["type", "sessionId", "execId"],
            json!({
                "type": { "type": "string", "enum": ["exec_started"] },
                "sessionId": { "type": "string" },
                "execId": { "type": "string" },
            }),
        ),
    );
    put(
        "ExecOutput",
        object(
            &["type", "sessionId", "execId", "stream", "data"],
            json!({
                "type": { "type": "string", "enum": ["exec_output"] },
                "sessionId": { "type": "string" },
                "execId": { "type": "string" },
                "stream": { "type": "string", "enum": ["stdout", "stderr"] },
                "data": { "type": "string" },
                "encoding": { "type": "string", "enum": ["base64"], "description": "Present when the bytes are not UTF-8." },
            }),
        ),
    );
    put(
        "ExecStreamLine",
        json!({
            "description": "One line of a streamed command.",
            "oneOf": [schema("ExecStarted"), schema("ExecOutput"), schema("ExecExitEvent")],
            "discriminator": { "propertyName": "type", "mapping": {
                "exec_started": "#/components/schemas/ExecStarted",
                "exec_output": "#/components/schemas/ExecOutput",
                "exec_exit": "#/components/schemas/ExecExitEvent",
            } },
        }),
    );
}

fn entry_properties(kinds: &[&str]) -> Map<String, Value> {
    let v = json!({
        "name": { "type": "string", "description": "The name (in a recursive listing: the path below the listed directory)." },
        "type": { "type": "string", "enum": kinds },
        "size": { "type": "integer", "minimum": 0, "description": "Bytes." },
        "mode": { "type": "string", "pattern": "^[0-7]{4}$", "description": "Permission bits in octal (`0644`)." },
        "mtime": { "type": "integer", "description": "Last modification (Unix seconds)." },
    });
    v.as_object().cloned().unwrap_or_default()
}

fn file_schemas(put: &mut impl FnMut(&str, Value)) {
    let places = crate::runtime::files::PLACES.join(", ");
    put(
        "SessionPath",
        json!({
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_PATH_BYTES,
            "pattern": session_path_pattern(PathKind::Any),
            "description": format!(
                "An absolute path under {places} (or one of them); `..` is refused, empty and `.` \
                segments are ignored, a name is at most 255 bytes."
            ),
        }),
    );
    put(
        "SessionFilePath",
        json!({
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_PATH_BYTES,
            "pattern": session_path_pattern(PathKind::Written),
            "description": format!(
                "An absolute path of a file to write below {places}; `..` is refused, empty and `.` \
                segments are ignored, a name is at most {MAX_NAME} bytes."
            ),
        }),
    );
    put(
        "SessionPathBelow",
        json!({
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_PATH_BYTES,
            "pattern": session_path_pattern(PathKind::Below),
            "description": format!(
                "An absolute path below {places} (not one of them itself); `..` is refused, empty \
                and `.` segments are ignored, a name is at most 255 bytes."
            ),
        }),
    );
    let mut entry = entry_properties(&["file", "directory", "symlink", "other"]);
    entry.insert(
        "target".into(),
        json!({ "type": "string", "description": "Where a symlink points (never followed)." }),
    );
    put(
        "Entry",
        object(
            &["name", "type", "size", "mode", "mtime"],
            Value::Object(entry),
        ),
    );
    let mut file = entry_properties(&["file", "other"]);
    file.insert(
        "path".into(),
        json!({ "type": "string", "description": "The path as asked." }),
    );
    put(
        "FileStat",
        object(
            &["name", "type", "size", "mode", "mtime", "path"],
            Value::Object(file),
        ),
    );
    let mut dir = entry_properties(&["directory"]);
    dir.insert("path".into(), json!({ "type": "string" }));
    dir.insert(
        "entries".into(),
        json!({ "type": "array", "items": schema("Entry"), "maxItems": crate::runtime::files::MAX_LIST }),
    );
    dir.insert(
        "truncated".into(),
        json!({ "type": "boolean", "description": "More entries were there than a listing holds." }),
    );
    dir.insert(
        "limit".into(),
        json!({ "type": "integer", "enum": [crate::runtime::files::MAX_LIST], "description": "Present when truncated: the most entries a listing holds." }),
    );
    put(
        "DirectoryStat",
        object(
            &[
                "name",
                "type",
                "size",
                "mode",
                "mtime",
                "path",
                "entries",
                "truncated",
            ],
            Value::Object(dir),
        ),
    );
    put(
        "Stat",
        json!({
            "oneOf": [schema("FileStat"), schema("DirectoryStat")],
            "discriminator": { "propertyName": "type", "mapping": {
                "file": "#/components/schemas/FileStat",
                "other": "#/components/schemas/FileStat",
                "directory": "#/components/schemas/DirectoryStat",
            } },
        }),
    );
    put(
        "FileWritten",
        object(
            &["path", "size"],
            json!({ "path": { "type": "string" }, "size": { "type": "integer", "minimum": 0, "description": "Bytes written." } }),
        ),
    );
    put(
        "FileRemoved",
        object(
            &["path", "removed"],
            json!({ "path": { "type": "string" }, "removed": { "type": "boolean", "enum": [true] } }),
        ),
    );
    put(
        "DirectoryMade",
        object(
            &["path", "created"],
            json!({ "path": { "type": "string" }, "created": { "type": "boolean", "description": "Whether it was made (false: it was there)." } }),
        ),
    );
    put(
        "MoveRequest",
        object(
            &["from", "to"],
            json!({ "from": schema("SessionPathBelow"), "to": schema("SessionPathBelow") }),
        ),
    );
    put(
        "FileMoved",
        object(
            &["from", "to"],
            json!({ "from": { "type": "string" }, "to": { "type": "string" } }),
        ),
    );
    put(
        "ArchiveUnpacked",
        object(
            &["path", "entries"],
            json!({ "path": { "type": "string" }, "entries": { "type": "integer", "minimum": 0, "description": "Entries unpacked." } }),
        ),
    );
}

fn event(kind: &str, required: &[&str], mut properties: Value) -> Value {
    properties["type"] = json!({ "type": "string", "enum": [kind] });
    properties["seq"] = json!({ "type": "integer", "minimum": 1, "description": "The event's number in the session's log; increasing, also across server restarts." });
    properties["sessionId"] = json!({ "type": "string" });
    let mut all = vec!["type", "seq", "sessionId"];
    all.extend_from_slice(required);
    object(&all, properties)
}

fn event_schemas(put: &mut impl FnMut(&str, Value)) {
    put(
        "LifecycleEvent",
        event(
            "lifecycle",
            &["state", "reason"],
            json!({
                "state": { "type": "string", "enum": ["created", "restored", "restarted", "removed", "expired"] },
                "reason": { "type": "string" },
            }),
        ),
    );
    put(
        "ConsoleEvent",
        event(
            "console",
            &["level", "args", "url", "timestamp"],
            json!({
                "level": { "type": "string", "enum": ["log", "info", "warn", "error", "debug"] },
                "args": { "type": "array", "items": {}, "description": "The call's arguments, as JSON." },
                "url": { "type": "string", "description": "The page that logged." },
                "timestamp": { "type": "integer", "minimum": 0, "description": "Unix milliseconds." },
                "kind": { "type": "string", "enum": ["uncaught", "unhandledrejection"], "description": "Absent for console calls." },
            }),
        ),
    );
    put(
        "PortOpenedEvent",
        event(
            "port_opened",
            &["port", "previewUrl"],
            json!({
                "port": { "type": "integer", "minimum": 1, "maximum": 65535 },
                "previewUrl": { "type": "string", "description": "The port's preview on an origin of its own." },
            }),
        ),
    );
    put(
        "PortClosedEvent",
        event(
            "port_closed",
            &["port"],
            json!({ "port": { "type": "integer", "minimum": 1, "maximum": 65535 } }),
        ),
    );
    put(
        "ExecExitEvent",
        event(
            "exec_exit",
            &["execId", "code", "signal", "durationMs", "timedOut"],
            json!({
                "execId": { "type": "string" },
                "code": { "type": "integer", "nullable": true, "minimum": 0 },
                "signal": { "type": "string", "nullable": true, "pattern": "^SIG[A-Z0-9]+$" },
                "durationMs": { "type": "integer", "minimum": 0 },
                "timedOut": { "type": "boolean" },
            }),
        ),
    );
    put(
        "ExitEvent",
        event(
            "exit",
            &["code", "signal"],
            json!({
                "code": { "type": "integer", "nullable": true, "description": "The terminal's shell exit code." },
                "signal": { "type": "string", "nullable": true, "pattern": "^SIG[A-Z0-9]+$" },
            }),
        ),
    );
    put(
        "Event",
        json!({
            "oneOf": [
                schema("LifecycleEvent"), schema("ConsoleEvent"), schema("PortOpenedEvent"),
                schema("PortClosedEvent"), schema("ExecExitEvent"), schema("ExitEvent"),
            ],
            "discriminator": { "propertyName": "type", "mapping": {
                "lifecycle": "#/components/schemas/LifecycleEvent",
                "console": "#/components/schemas/ConsoleEvent",
                "port_opened": "#/components/schemas/PortOpenedEvent",
                "port_closed": "#/components/schemas/PortClosedEvent",
                "exec_exit": "#/components/schemas/ExecExitEvent",
                "exit": "#/components/schemas/ExitEvent",
            } },
        }),
    );
    put(
        "Events",
        object(
            &["events", "next"],
            json!({
                "events": { "type": "array", "items": schema("Event"), "maxItems": crate::events::MAX_EVENTS },
                "next": { "type": "integer", "minimum": 0, "description": "The `since` to ask with next: the last event's `seq`, or `since` when there was none." },
                "missed": { "type": "boolean", "enum": [true], "description": "Present when events after `since` were dropped before being read." },
            }),
        ),
    );
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashSet};
    use std::num::NonZeroU32;
    use std::time::Duration;

    use super::*;
    use crate::error::ApiError;
    use crate::hosts::HostTarget;
    use crate::limits::spec::RateSpec;
    use crate::limits::RateInfo;
    use crate::protocol::ServerMessage;

    const SID: &str = "session-AAAAAAAAAAAAAAAAAAAAAA";
    const METHODS: [&str; 8] = [
        "get", "head", "post", "put", "delete", "patch", "options", "trace",
    ];

    // ----- (1) valid OpenAPI 3 -----

    /// Keys of `written` that did not survive the round trip through the
    /// typed model: misspelled or misplaced ones (the model ignores them).
    fn lost_keys(written: &Value, back: &Value, at: &str, out: &mut Vec<String>) {
        match (written, back) {
            (Value::Object(w), Value::Object(b)) => {
                for (k, v) in w {
                    let here = format!("{at}/{k}");
                    match b.get(k) {
                        Some(bv) => lost_keys(v, bv, &here, out),
                        // The model leaves out a default it read: fine.
                        None if k == "required" && *v == json!(false) => {}
                        None => out.push(here),
                    }
                }
            }
            (Value::Array(w), Value::Array(b)) => {
                for (i, (wv, bv)) in w.iter().zip(b).enumerate() {
                    lost_keys(wv, bv, &format!("{at}/{i}"), out);
                }
                if w.len() != b.len() {
                    out.push(format!("{at} (length)"));
                }
            }
            _ => {}
        }
    }

    #[test]
    fn the_document_is_openapi_3_and_every_key_in_it_is_understood() {
        let doc = document();
        let parsed: openapiv3::OpenAPI =
            serde_json::from_value(doc.clone()).expect("the document is OpenAPI 3");
        assert_eq!(parsed.openapi, "3.0.3");
        assert_eq!(parsed.info.version, env!("CARGO_PKG_VERSION"));
        let back = serde_json::to_value(&parsed).unwrap();
        let mut lost = Vec::new();
        lost_keys(&doc, &back, "", &mut lost);
        assert!(lost.is_empty(), "not OpenAPI 3.0 keys: {lost:#?}");
    }

    #[tokio::test]
    async fn the_route_serves_the_document() {
        for (tokens, expected) in [(true, document()), (false, document_without_tokens())] {
            let resp = openapi(tokens);
            assert_eq!(resp.status(), 200);
            assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
            let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .unwrap();
            let served: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(served, expected, "tokens: {tokens}");
        }
    }

    // ----- (2) the document and the route table agree -----

    /// Where each route is documented: its path template, or `None` for
    /// what is not the REST API. Exhaustive: a new route does not compile
    /// until it says.
    fn documented_at(route: &Route) -> Option<&'static str> {
        match route {
            Route::Health => Some("/api/health"),
            Route::OpenApi => Some("/api/openapi.json"),
            Route::Metrics => Some("/metrics"),
            Route::Images => Some("/api/images"),
            Route::ListSessions | Route::CreateSession => Some("/api/containers"),
            Route::GetSession(_) | Route::RemoveSession(_) => Some("/api/containers/{sessionId}"),
            Route::ConfigurePreview => Some("/api/preview/configure"),
            Route::ListCommands(_) | Route::StartCommand(_) => {
                Some("/api/containers/{sessionId}/exec")
            }
            Route::GetCommand(..) | Route::KillCommand(..) => {
                Some("/api/containers/{sessionId}/exec/{execId}")
            }
            Route::CommandInput(..) => Some("/api/containers/{sessionId}/exec/{execId}/input"),
            Route::FileInfo(_) | Route::RemoveFile(_) => Some("/api/containers/{sessionId}/files"),
            Route::ReadFile(_) | Route::WriteFile(_) => {
                Some("/api/containers/{sessionId}/files/content")
            }
            Route::MakeDirectory(_) => Some("/api/containers/{sessionId}/files/mkdir"),
            Route::MoveFile(_) => Some("/api/containers/{sessionId}/files/move"),
            Route::DownloadArchive(_) | Route::UploadArchive(_) => {
                Some("/api/containers/{sessionId}/files/archive")
            }
            Route::Events(_) => Some("/api/containers/{sessionId}/events"),
            // The terminal's WebSocket (and its banner), the studio page and
            // the preview proxy are not the REST API; OpenAPI 3.0 cannot
            // describe a WebSocket.
            Route::Banner
            | Route::Studio
            | Route::Terminal
            | Route::PathPreview
            | Route::HostPreview(_) => None,
            Route::MethodNotAllowed { .. } | Route::NotFound { .. } => None,
        }
    }

    const VARIANTS: usize = 30;

    /// A request reaching every kind of route (as `http::route`'s table).
    #[rustfmt::skip]
    fn requests() -> Vec<(Method, String, bool, Option<HostTarget>)> {
        let host = HostTarget { port: 3000, session_label: SID.into() };
        vec![
            (Method::GET, "/api/health".into(), false, None),
            (Method::GET, "/api/openapi.json".into(), false, None),
            (Method::GET, "/metrics".into(), false, None),
            (Method::GET, "/ws".into(), false, None),
            (Method::GET, "/s/session-x".into(), false, None),
            (Method::GET, "/ws".into(), true, None),
            (Method::GET, "/api/images".into(), false, None),
            (Method::GET, "/api/containers".into(), false, None),
            (Method::POST, "/api/containers".into(), false, None),
            (Method::GET, format!("/api/containers/{SID}"), false, None),
            (Method::DELETE, format!("/api/containers/{SID}"), false, None),
            (Method::POST, "/api/preview/configure".into(), false, None),
            (Method::GET, format!("/api/containers/{SID}/exec"), false, None),
            (Method::POST, format!("/api/containers/{SID}/exec"), false, None),
            (Method::GET, format!("/api/containers/{SID}/exec/e1"), false, None),
            (Method::DELETE, format!("/api/containers/{SID}/exec/e1"), false, None),
            (Method::POST, format!("/api/containers/{SID}/exec/e1/input"), false, None),
            (Method::GET, format!("/api/containers/{SID}/files"), false, None),
            (Method::DELETE, format!("/api/containers/{SID}/files"), false, None),
            (Method::GET, format!("/api/containers/{SID}/files/content"), false, None),
            (Method::PUT, format!("/api/containers/{SID}/files/content"), false, None),
            (Method::POST, format!("/api/containers/{SID}/files/mkdir"), false, None),
            (Method::POST, format!("/api/containers/{SID}/files/move"), false, None),
            (Method::GET, format!("/api/containers/{SID}/files/archive"), false, None),
            (Method::PUT, format!("/api/containers/{SID}/files/archive"), false, None),
            (Method::GET, format!("/api/containers/{SID}/events"), false, None),
            (Method::PUT, format!("/preview/{SID}/x"), false, None),
            (Method::POST, "/api/containers".into(), false, Some(host)),
            (Method::PATCH, "/api/containers".into(), false, None),
            (Method::GET, "/api/nothing".into(), false, None),
        ]
    }

    fn has_operation(doc: &Value, template: &str, method: &Method) -> bool {
        doc["paths"][template]
            .get(method.as_str().to_ascii_lowercase())
            .is_some()
    }

    #[test]
    fn every_route_is_documented_and_every_operation_is_a_route() {
        let doc = document();
        let mut seen = BTreeSet::new();
        for (method, path, upgrade, host) in requests() {
            let route = classify(&method, &path, upgrade, host);
            seen.insert(route.index());
            if let Some(template) = documented_at(&route) {
                assert!(
                    has_operation(&doc, template, &method),
                    "{method} {path} ({route:?}) is not documented at {template}"
                );
                if method == Method::GET {
                    assert!(
                        has_operation(&doc, template, &Method::HEAD),
                        "HEAD {template}"
                    );
                }
            }
        }
        assert_eq!(seen.len(), VARIANTS, "the requests miss a kind of route");

        let paths = doc["paths"].as_object().unwrap();
        let mut count = 0;
        for (template, item) in paths {
            for (method, _) in item.as_object().unwrap() {
                if method == "parameters" {
                    continue;
                }
                assert!(METHODS.contains(&method.as_str()), "{template}: {method}");
                let m = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
                let route = classify(&m, &concrete(template), false, None);
                assert_eq!(
                    documented_at(&route),
                    Some(template.as_str()),
                    "{m} {template} is {route:?}"
                );
                count += 1;
            }
        }
        // 23 operations, and a HEAD for each of the 12 GETs.
        assert_eq!(count, 35);
    }

    #[test]
    fn path_templates_name_their_parameters() {
        let doc = document();
        for (template, item) in doc["paths"].as_object().unwrap() {
            let named: Vec<String> = item["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .map(|p| resolve(&doc, p)["name"].as_str().unwrap().to_string())
                        .collect()
                })
                .unwrap_or_default();
            let mut in_template: Vec<String> = template
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .map(String::from)
                .collect();
            in_template.sort();
            let mut named = named;
            named.sort();
            assert_eq!(named, in_template, "{template}");
        }
    }

    // ----- (3) references -----

    fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let target = doc
                    .pointer(r.strip_prefix('#').expect("a local reference"))
                    .unwrap_or_else(|| panic!("{r} does not resolve"));
                resolve(doc, target)
            }
            None => v,
        }
    }

    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("$ref", Value::String(r)) => out.push(r),
                        _ => refs(v, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    fn operations_of(doc: &Value) -> Vec<(String, String, &Value)> {
        let mut ops = Vec::new();
        for (template, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                if method != "parameters" {
                    ops.push((template.clone(), method.clone(), op));
                }
            }
        }
        ops
    }

    #[test]
    fn every_reference_resolves_and_every_component_is_used() {
        let doc = document();
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(!all.is_empty());
        for r in &all {
            assert!(r.starts_with("#/components/"), "{r}");
            assert!(doc.pointer(&r[1..]).is_some(), "{r} does not resolve");
        }
        // Discriminator mappings are references too.
        let mut mappings = Vec::new();
        fn walk<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
            match v {
                Value::Object(m) => {
                    if let Some(map) = m
                        .get("discriminator")
                        .and_then(|d| d["mapping"].as_object())
                    {
                        out.extend(map.values().filter_map(Value::as_str));
                    }
                    m.values().for_each(|v| walk(v, out));
                }
                Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
                _ => {}
            }
        }
        walk(&doc, &mut mappings);
        assert!(!mappings.is_empty());
        for r in mappings {
            assert!(doc.pointer(&r[1..]).is_some(), "{r} does not resolve");
        }
        // Every component is used by something.
        let used: HashSet<&str> = all.iter().copied().collect();
        for kind in ["schemas", "parameters", "headers"] {
            for name in doc["components"][kind].as_object().unwrap().keys() {
                let r = format!("#/components/{kind}/{name}");
                assert!(
                    used.contains(r.as_str()) || name == "Error",
                    "{r} is not used"
                );
            }
        }
        // Links name operations that exist, with parameters they take.
        let ops = operations_of(&doc);
        let ids: Vec<&str> = ops
            .iter()
            .map(|(_, _, op)| op["operationId"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids.iter().collect::<HashSet<_>>().len(),
            ids.len(),
            "operationIds repeat"
        );
        for (template, method, op) in &ops {
            for (status, resp) in op["responses"].as_object().unwrap() {
                for (name, link) in resp["links"].as_object().into_iter().flatten() {
                    let target = link["operationId"].as_str().unwrap();
                    let (t_template, ..) = ops
                        .iter()
                        .find(|(_, _, o)| o["operationId"] == target)
                        .unwrap_or_else(|| {
                            panic!("{method} {template} {status}: link {name} to {target}")
                        });
                    for p in link["parameters"].as_object().unwrap().keys() {
                        assert!(
                            t_template.contains(&format!("{{{p}}}")),
                            "{target} has no {p}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn without_tokens_no_operation_needs_one_or_answers_401() {
        let with = document();
        let without = document_without_tokens();
        assert_eq!(with["security"], json!([{ "bearer": [] }]));
        assert_eq!(without["security"], json!([]));
        let _: openapiv3::OpenAPI =
            serde_json::from_value(without.clone()).expect("still OpenAPI 3");
        let with_ops = operations_of(&with);
        let without_ops = operations_of(&without);
        assert_eq!(with_ops.len(), without_ops.len());
        for ((template, method, a), (_, _, b)) in with_ops.iter().zip(&without_ops) {
            let at = format!("{method} {template}");
            assert_eq!(a.get("security"), b.get("security"), "{at}");
            let mut kept: Vec<&String> = a["responses"].as_object().unwrap().keys().collect();
            kept.retain(|s| *s != "401");
            let left: Vec<&String> = b["responses"].as_object().unwrap().keys().collect();
            assert_eq!(kept, left, "{at}");
        }
    }

    // ----- what each operation promises -----

    #[test]
    fn every_operation_says_what_it_answers() {
        let doc = document();
        for (template, method, op) in operations_of(&doc) {
            let at = format!("{method} {template}");
            for key in ["operationId", "summary", "tags", "responses"] {
                assert!(op.get(key).is_some(), "{at}: no {key}");
            }
            let m = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
            let route = classify(&m, &concrete(&template), false, None);
            let responses = op["responses"].as_object().unwrap();
            let public = op.get("security") == Some(&json!([]));
            assert_eq!(public, route.auth() == Auth::Public, "{at}");
            assert_eq!(responses.contains_key("401"), !public, "{at}");
            for status in ["400", "429", "431"] {
                assert!(responses.contains_key(status), "{at}: no {status}");
            }
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{at}: no success"
            );
            for (status, resp) in responses {
                assert!(resp["description"].is_string(), "{at} {status}");
                if status.starts_with('4') || status.starts_with('5') {
                    if method != "head" {
                        let s = &resp["content"]["application/json"]["schema"]["$ref"];
                        assert!(
                            s.as_str()
                                .is_some_and(|s| s.starts_with("#/components/schemas/Error")),
                            "{at} {status}: not the error body"
                        );
                    }
                    if status == "429" {
                        assert!(resp["headers"].get("Retry-After").is_some(), "{at}");
                    }
                }
                if method == "head" {
                    assert!(resp.get("content").is_none(), "{at} {status} has a body");
                }
            }
            // A request body, where there is one, is strict.
            if let Some(body) = op.get("requestBody") {
                if let Some(s) = body["content"]["application/json"].get("schema") {
                    strict(&doc, resolve(&doc, s), &at);
                }
            }
        }
    }

    /// Every object a body may hold refuses unknown fields.
    fn strict(doc: &Value, s: &Value, at: &str) {
        let s = resolve(doc, s);
        if let Some(options) = s.get("oneOf").and_then(Value::as_array) {
            options.iter().for_each(|o| strict(doc, o, at));
        }
        if s["type"] == "object" && s.get("oneOf").is_none() {
            assert!(
                s["additionalProperties"] == json!(false) || s["additionalProperties"].is_object(),
                "{at}: an object that takes any field"
            );
            for p in s["properties"].as_object().into_iter().flatten() {
                strict(doc, p.1, at);
            }
        }
    }

    // ----- what the handlers produce fits the schemas -----

    /// The part of JSON Schema the document uses (patterns are not checked
    /// here: see the tests of the validators below).
    fn check(doc: &Value, s: &Value, v: &Value, at: &str, errs: &mut Vec<String>) {
        let s = resolve(doc, s);
        if let Some(all) = s.get("allOf").and_then(Value::as_array) {
            for sub in all {
                check(doc, sub, v, at, errs);
            }
        }
        if let Some(one) = s.get("oneOf").and_then(Value::as_array) {
            let fits = one
                .iter()
                .filter(|sub| {
                    let mut e = Vec::new();
                    check(doc, sub, v, at, &mut e);
                    e.is_empty()
                })
                .count();
            if fits != 1 {
                errs.push(format!("{at}: fits {fits} of oneOf: {v}"));
            }
        }
        if v.is_null() {
            if s.get("type").is_some() && s["nullable"] != json!(true) {
                errs.push(format!("{at}: null"));
            }
            return;
        }
        if let Some(e) = s.get("enum").and_then(Value::as_array) {
            if !e.contains(v) {
                errs.push(format!("{at}: {v} not in {e:?}"));
            }
        }
        let ok = match s["type"].as_str() {
            None => true,
            Some("object") => v.is_object(),
            Some("array") => v.is_array(),
            Some("string") => v.is_string(),
            Some("integer") => v.is_i64() || v.is_u64(),
            Some("number") => v.is_number(),
            Some("boolean") => v.is_boolean(),
            Some(other) => panic!("type {other}"),
        };
        if !ok {
            errs.push(format!("{at}: {v} is not {}", s["type"]));
            return;
        }
        if let Some(n) = v.as_f64() {
            if s["minimum"].as_f64().is_some_and(|m| n < m) {
                errs.push(format!("{at}: {n} below the minimum"));
            }
            if s["maximum"].as_f64().is_some_and(|m| n > m) {
                errs.push(format!("{at}: {n} above the maximum"));
            }
        }
        if let Some(text) = v.as_str() {
            let n = text.chars().count() as u64;
            if s["minLength"].as_u64().is_some_and(|m| n < m)
                || s["maxLength"].as_u64().is_some_and(|m| n > m)
            {
                errs.push(format!("{at}: length {n}"));
            }
        }
        if let Some(items) = v.as_array() {
            let n = items.len() as u64;
            if s["minItems"].as_u64().is_some_and(|m| n < m)
                || s["maxItems"].as_u64().is_some_and(|m| n > m)
            {
                errs.push(format!("{at}: {n} items"));
            }
            if let Some(item) = s.get("items") {
                for (i, x) in items.iter().enumerate() {
                    check(doc, item, x, &format!("{at}/{i}"), errs);
                }
            }
        }
        if let Some(obj) = v.as_object() {
            if s["maxProperties"]
                .as_u64()
                .is_some_and(|m| obj.len() as u64 > m)
            {
                errs.push(format!("{at}: {} properties", obj.len()));
            }
            for r in s["required"].as_array().into_iter().flatten() {
                if !obj.contains_key(r.as_str().unwrap()) {
                    errs.push(format!("{at}: no {r}"));
                }
            }
            let props = s["properties"].as_object();
            for (k, x) in obj {
                match props.and_then(|p| p.get(k)) {
                    Some(ps) => check(doc, ps, x, &format!("{at}/{k}"), errs),
                    None => match s.get("additionalProperties") {
                        Some(Value::Bool(false)) => errs.push(format!("{at}: unknown {k}")),
                        Some(extra @ Value::Object(_)) => {
                            check(doc, extra, x, &format!("{at}/{k}"), errs)
                        }
                        _ => {}
                    },
                }
            }
        }
    }

    fn assert_fits(doc: &Value, name: &str, v: &Value) {
        let mut errs = Vec::new();
        check(doc, &schema(name), v, name, &mut errs);
        assert!(errs.is_empty(), "{v} does not fit {name}: {errs:#?}");
    }

    #[test]
    fn every_error_body_fits_the_schema_of_its_status() {
        let doc = document();
        let info = RateInfo {
            name: "test",
            spec: RateSpec {
                count: NonZeroU32::new(3).unwrap(),
                per: Duration::from_secs(60),
            },
            remaining: 0,
            reset_in: Duration::from_secs(5),
            retry_after: Some(Duration::from_secs(5)),
        };
        let m = || "m".to_string();
        let all = [
            ApiError::Validation(m()),
            ApiError::Authentication(m()),
            ApiError::ContainerNotFound(m()),
            ApiError::MessageTooLarge(m()),
            ApiError::RateLimit(m()),
            ApiError::ContainerCreation(m()),
            ApiError::DockerDaemon(m()),
            ApiError::PreviewUnavailable(m()),
            ApiError::PreviewTimeout(m()),
            ApiError::MethodNotAllowed(m()),
            ApiError::Limited(info),
            ApiError::Unavailable(m()),
            ApiError::FileNotFound(m()),
            ApiError::CommandNotFound(m()),
            ApiError::Conflict(m()),
            ApiError::RangeNotSatisfiable(m()),
            ApiError::Forbidden(m()),
            ApiError::AtCapacity {
                message: m(),
                limit: 16,
                retry_after_secs: 1,
            },
        ];
        for e in all {
            let body = e.to_json();
            assert_fits(&doc, "Error", &body);
            let status = e.status().as_u16();
            let kinds: Vec<&str> = ERRORS
                .iter()
                .filter(|(_, s, names, _)| *s == status && names.contains(&e.name()))
                .map(|(k, ..)| *k)
                .collect();
            // Not answered by the REST routes: 405 (a method a path does not
            // take), the preview's 502/504, file watching's 503.
            let rest = !matches!(
                e,
                ApiError::MethodNotAllowed(_)
                    | ApiError::PreviewUnavailable(_)
                    | ApiError::PreviewTimeout(_)
                    | ApiError::Unavailable(_)
            );
            assert_eq!(!kinds.is_empty(), rest, "{e:?}");
            for k in kinds {
                assert_fits(&doc, &error_schema_name(k), &body);
            }
            let resp = e.into_response();
            if resp.status() == 429 {
                assert!(resp.headers().contains_key("retry-after"));
            }
        }
        // The refusals the guard makes with statuses of their own.
        for (key, status) in [("403", 403), ("431", 431)] {
            let mut body = ApiError::validation("x").to_json();
            if key == "431" {
                body = ApiError::MessageTooLarge("x".into()).to_json();
            }
            body["statusCode"] = status.into();
            assert_fits(&doc, &error_schema_name(key), &body);
        }
    }

    #[test]
    fn what_the_handlers_answer_fits_the_schemas() {
        let doc = document();
        let info = |port| crate::session::SessionInfo {
            session_id: SID.into(),
            container_id: "c0ffee".into(),
            status: crate::session::status_word(None),
            image: "node:20-alpine".into(),
            created_at: 1_700_000_000,
            preview_port: port,
            ports: vec![3000, 5173],
        };
        assert_fits(
            &doc,
            "SessionInfo",
            &serde_json::to_value(info(None)).unwrap(),
        );
        assert_fits(
            &doc,
            "SessionInfo",
            &serde_json::to_value(info(Some(3000))).unwrap(),
        );

        let outcome = crate::exec::Outcome {
            exec_id: "exec-AAAAAAAAAAAAAAAA".into(),
            running: false,
            exit_code: Some(137),
            signal: Some("SIGKILL"),
            stdout: "hi\n".into(),
            stderr: "AAEC".into(),
            stdout_encoding: None,
            stderr_encoding: Some("base64"),
            truncated: false,
            duration_ms: 12,
            timed_out: true,
        };
        assert_fits(&doc, "Outcome", &serde_json::to_value(outcome).unwrap());
        let running = crate::exec::Outcome {
            exec_id: "e1".into(),
            running: true,
            exit_code: None,
            signal: None,
            stdout: String::new(),
            stderr: String::new(),
            stdout_encoding: None,
            stderr_encoding: None,
            truncated: true,
            duration_ms: 0,
            timed_out: false,
        };
        assert_fits(&doc, "Outcome", &serde_json::to_value(running).unwrap());

        for ended in [
            None,
            Some(crate::exec::Ended {
                exit_code: Some(0),
                signal: None,
                duration_ms: 5,
                timed_out: false,
            }),
        ] {
            let summary = crate::exec::Summary {
                exec_id: "e1".into(),
                cmd: vec!["ls".into()],
                started_at: 1_700_000_000_000,
                running: ended.is_none(),
                ended,
            };
            let list = json!({ "commands": [serde_json::to_value(summary).unwrap()] });
            assert_fits(&doc, "CommandList", &list);
        }

        let entry = crate::runtime::files::Entry {
            name: "link".into(),
            kind: "symlink",
            size: 4,
            mode: "0777".into(),
            mtime: 1_700_000_000,
            target: Some("/tmp".into()),
        };
        let e = serde_json::to_value(&entry).unwrap();
        assert_fits(&doc, "Entry", &e);
        let mut dir = e.clone();
        dir["type"] = "directory".into();
        dir.as_object_mut().unwrap().remove("target");
        dir["path"] = "/workspace".into();
        dir["entries"] = json!([e]);
        dir["truncated"] = true.into();
        dir["limit"] = crate::runtime::files::MAX_LIST.into();
        assert_fits(&doc, "Stat", &dir);
        let mut file = serde_json::to_value(crate::runtime::files::Entry {
            kind: "file",
            target: None,
            ..entry
        })
        .unwrap();
        file["path"] = "/workspace/link".into();
        assert_fits(&doc, "Stat", &file);

        let images = crate::ops::Images {
            default_image: "node:20-alpine".into(),
            allowed: vec!["node:*".into()],
            local: vec!["node:20-alpine".into()],
            fallback_image: None,
        };
        assert_fits(&doc, "Images", &serde_json::to_value(images).unwrap());
    }

    #[test]
    fn every_event_the_log_keeps_fits_the_event_schema() {
        let doc = document();
        let args = [json!("hi"), json!({ "a": 1 })];
        let events = [
            ServerMessage::Lifecycle {
                session_id: SID,
                state: "created",
                reason: "Session created",
            },
            ServerMessage::Console {
                session_id: SID,
                level: "warn",
                args: &args,
                url: "http://x/",
                timestamp: 5,
                kind: Some("uncaught"),
            },
            ServerMessage::PortOpened {
                session_id: SID,
                port: 3000,
                preview_url: "http://3000-x.localhost/",
            },
            ServerMessage::PortClosed {
                session_id: SID,
                port: 3000,
            },
            ServerMessage::ExecExit {
                session_id: SID,
                exec_id: "e1",
                code: Some(1),
                signal: None,
                duration_ms: 3,
                timed_out: false,
            },
            ServerMessage::Exit {
                session_id: SID,
                code: None,
                signal: None,
            },
        ];
        let mut log = crate::events::EventLog::new(1_700_000_000_000);
        let mut kept = Vec::new();
        for e in &events {
            kept.push(log.record(&e.to_text()));
        }
        let found = log.since(0);
        let body = json!({
            "events": found.events.iter().map(|e| serde_json::from_str::<Value>(e).unwrap()).collect::<Vec<_>>(),
            "next": found.next,
        });
        assert_fits(&doc, "Events", &body);
        // The streamed lines of a command.
        let exit: Value = serde_json::from_str(&kept[4]).unwrap();
        assert_fits(&doc, "ExecStreamLine", &exit);
        for line in [
            ServerMessage::ExecStarted {
                session_id: SID,
                exec_id: "e1",
            },
            ServerMessage::ExecOutput {
                session_id: SID,
                exec_id: "e1",
                stream: crate::runtime::OutputStream::Stderr.name(),
                data: "AAEC",
                encoding: Some("base64"),
            },
        ] {
            let v: Value = serde_json::from_str(&line.to_text()).unwrap();
            assert_fits(&doc, "ExecStreamLine", &v);
        }
    }

    #[test]
    fn request_schemas_take_what_the_requests_take() {
        let doc = document();
        let fits = |name: &str, v: Value| {
            let mut errs = Vec::new();
            check(&doc, &schema(name), &v, name, &mut errs);
            errs.is_empty()
        };
        assert!(fits("CreateRequest", json!({})));
        assert!(fits(
            "CreateRequest",
            json!({ "image": null, "cols": 80, "env": { "A": "1" } })
        ));
        assert!(!fits("CreateRequest", json!({ "imgae": "x" })));
        assert!(!fits("CreateRequest", json!({ "cols": 0 })));
        assert!(fits("ExecRequest", json!({ "cmd": "ls" })));
        assert!(fits(
            "ExecRequest",
            json!({ "cmd": ["ls", "-l"], "timeout": 1.5 })
        ));
        assert!(!fits("ExecRequest", json!({ "cmd": 5 })));
        assert!(!fits("ExecRequest", json!({ "cmd": [] })));
        assert!(!fits(
            "ExecRequest",
            json!({ "cmd": "ls", "timeout": 86401 })
        ));
        assert_eq!(
            doc["components"]["schemas"]["ExecRequest"]["properties"]["timeout"]
                ["exclusiveMinimum"],
            json!(true)
        );
        assert!(fits("ExecInput", json!({})));
        assert!(fits(
            "ExecInput",
            json!({ "data": "QQ==", "encoding": "base64", "eof": true })
        ));
        assert!(fits("ExecInput", json!({ "data": "x", "encoding": null })));
        assert!(!fits(
            "ExecInput",
            json!({ "data": "x", "encoding": "hex" })
        ));
        assert!(!fits("ExecInput", json!({ "data": null })));
        assert!(fits(
            "PreviewRequest",
            json!({ "sessionId": SID, "port": 3000 })
        ));
        assert!(!fits(
            "PreviewRequest",
            json!({ "sessionId": SID, "port": 0 })
        ));
        assert!(!fits(
            "PreviewRequest",
            json!({ "sessionId": SID, "port": 3000, "host": "x" })
        ));
        assert!(fits(
            "MoveRequest",
            json!({ "from": "/tmp/a", "to": "/workspace/b" })
        ));
        assert!(!fits("MoveRequest", json!({ "from": "/tmp/a" })));
    }

    #[test]
    fn every_example_fits_its_schema() {
        let doc = document();
        assert!(crate::session::id::is_well_formed(EXAMPLE_SESSION_ID));
        let mut seen = 0;
        for (template, method, op) in operations_of(&doc) {
            if let Some(media) = op["requestBody"]["content"]["application/json"].as_object() {
                let example = media.get("example").expect("a JSON body has an example");
                let mut errs = Vec::new();
                check(
                    &doc,
                    &media["schema"],
                    example,
                    &format!("{method} {template}"),
                    &mut errs,
                );
                assert!(errs.is_empty(), "{errs:#?}");
                seen += 1;
            }
        }
        for p in doc["components"]["parameters"]
            .as_object()
            .unwrap()
            .values()
        {
            if let Some(example) = p.get("example") {
                let mut errs = Vec::new();
                check(
                    &doc,
                    &p["schema"],
                    example,
                    p["name"].as_str().unwrap(),
                    &mut errs,
                );
                assert!(errs.is_empty(), "{errs:#?}");
                seen += 1;
            }
        }
        assert_eq!(seen, 9);
        for p in ["Path", "PathBelow", "FilePath"] {
            let example = doc["components"]["parameters"][p]["example"]
                .as_str()
                .unwrap();
            assert!(crate::runtime::files::locate(example).is_ok(), "{example}");
        }
    }

    // ----- the limits the document states are the validators' -----

    #[test]
    fn stated_limits_are_the_validators_limits() {
        use crate::protocol::client::{check_exec_id, decode_data, parse_signal, Exec};
        use crate::protocol::validate::{check_dims, env_pairs, MAX_TERMINAL_DIM};
        use std::collections::BTreeMap;

        let env = |n: usize, key: usize, value: usize| {
            let mut m: BTreeMap<String, String> =
                (0..n).map(|i| (format!("V{i}"), String::new())).collect();
            m.insert("K".repeat(key), "v".repeat(value));
            env_pairs(&m)
        };
        assert!(env(MAX_ENV_VARS - 1, MAX_ENV_KEY, MAX_ENV_VALUE).is_ok());
        assert!(env(MAX_ENV_VARS, 1, 0).is_err());
        assert!(env(0, MAX_ENV_KEY + 1, 0).is_err());
        assert!(env(0, 1, MAX_ENV_VALUE + 1).is_err());

        assert!(check_dims(1, MAX_TERMINAL_DIM).is_ok());
        assert!(check_dims(0, 1).is_err() && check_dims(1, MAX_TERMINAL_DIM + 1).is_err());

        let exec = |cmd: Value| Exec {
            cmd,
            ..Default::default()
        };
        let max_cmd = crate::protocol::client::MAX_CMD_BYTES;
        let args = |n: usize| Value::from(vec![Value::from("a"); n]);
        assert!(exec(args(MAX_ARGS)).argv().is_ok());
        assert!(exec(args(MAX_ARGS + 1)).argv().is_err());
        let string_max = doc_number(
            "ExecRequest",
            &["properties", "cmd", "oneOf", "0", "maxLength"],
        );
        assert!(exec(Value::from("a".repeat(string_max))).argv().is_ok());
        assert!(exec(Value::from("a".repeat(string_max + 1)))
            .argv()
            .is_err());
        let item_max = doc_number(
            "ExecRequest",
            &["properties", "cmd", "oneOf", "1", "items", "maxLength"],
        );
        assert_eq!(item_max, max_cmd - 1);
        assert!(exec(Value::from(vec!["a".repeat(item_max)])).argv().is_ok());
        assert!(exec(Value::from(vec!["a".repeat(item_max + 1)]))
            .argv()
            .is_err());
        assert!(exec(Value::from(" \t")).argv().is_err());

        let timeout = |t: f64| {
            Exec {
                timeout: Some(t),
                ..exec(Value::from("ls"))
            }
            .timeout()
        };
        let max_timeout = crate::exec::MAX_TIMEOUT.as_secs_f64();
        assert!(timeout(max_timeout).is_ok() && timeout(0.001).is_ok());
        assert!(timeout(0.0).is_err() && timeout(max_timeout + 0.001).is_err());
        assert!(Exec {
            cwd: Some(format!("/{}", "a".repeat(MAX_PATH_BYTES - 1))),
            ..exec(Value::from("ls"))
        }
        .cwd()
        .is_ok());
        assert!(Exec {
            cwd: Some(format!("/{}", "a".repeat(MAX_PATH_BYTES))),
            ..exec(Value::from("ls"))
        }
        .cwd()
        .is_err());

        assert!(check_exec_id(&"a".repeat(64)).is_ok());
        assert!(check_exec_id(&"a".repeat(65)).is_err() && check_exec_id("").is_err());

        // Canonical padded base64, as BASE64_PATTERN says.
        for ok in ["", "QQ==", "QUI=", "QUJD", "AAAAAA=="] {
            assert!(decode_data(ok, Some("base64")).is_ok(), "{ok}");
        }
        for bad in ["QQ", "QR==", "QUJ=", "Q===", "QU JD", "QUJD\n"] {
            assert!(decode_data(bad, Some("base64")).is_err(), "{bad}");
        }
        for enc in ["utf8", "utf-8"] {
            assert!(decode_data("x", Some(enc)).is_ok());
        }
        assert!(decode_data("x", Some("hex")).is_err());

        // Every spelling the signal pattern allows names the signal.
        for (name, number) in SIGNALS {
            let n = i32::from(number);
            for spelling in [
                name.to_string(),
                format!("SIG{name}"),
                format!("sig{}", name.to_lowercase()),
                number.to_string(),
                format!("+0{number}"),
            ] {
                assert_eq!(
                    parse_signal(Some(&Value::from(spelling.clone()))),
                    Ok(n),
                    "{spelling}"
                );
            }
        }
        for bad in ["SIGSIGHUP", "-9", "11", "SIGILL", ""] {
            assert!(parse_signal(Some(&Value::from(bad))).is_err(), "{bad}");
        }

        // Paths.
        use crate::runtime::files::locate;
        assert!(locate("/workspace").is_ok() && locate("/home/studio/x").is_ok());
        assert!(
            locate("/tmpx").is_err() && locate("tmp/x").is_err() && locate("/tmp/../etc").is_err()
        );
        assert!(locate(&format!("/tmp/{}", "a".repeat(MAX_PATH_BYTES - 5))).is_ok());
        assert!(locate(&format!("/tmp/{}", "a".repeat(MAX_PATH_BYTES - 4))).is_err());
        assert_eq!(
            crate::runtime::files::PLACES,
            ["/workspace", "/home/studio", "/tmp"],
            "session_path_pattern names the places"
        );

        // A replaced file's temporary name is as long as a new one's.
        use crate::runtime::files::temp_name;
        assert_eq!(temp_name("f", true).len(), temp_name("f", false).len());

        assert!(crate::image::ImageRef::parse(&"a".repeat(MAX_IMAGE_LEN)).is_ok());
        assert!(crate::image::ImageRef::parse(&"a".repeat(MAX_IMAGE_LEN + 1)).is_err());
    }

    fn doc_number(schema_name: &str, at: &[&str]) -> usize {
        let doc = document();
        let mut v = &doc["components"]["schemas"][schema_name];
        for k in at {
            v = match k.parse::<usize>() {
                Ok(i) => &v[i],
                Err(_) => &v[*k],
            };
        }
        v.as_u64().unwrap_or_else(|| panic!("{schema_name} {at:?}")) as usize
    }

    #[test]
    fn signals_are_the_systems() {
        for (name, number) in SIGNALS {
            let expected = match name {
                "HUP" => libc::SIGHUP,
                "INT" => libc::SIGINT,
                "QUIT" => libc::SIGQUIT,
                "KILL" => libc::SIGKILL,
                "USR1" => libc::SIGUSR1,
                "USR2" => libc::SIGUSR2,
                "TERM" => libc::SIGTERM,
                "CONT" => libc::SIGCONT,
                "STOP" => libc::SIGSTOP,
                "WINCH" => libc::SIGWINCH,
                other => panic!("{other}"),
            };
            assert_eq!(i32::from(number), expected, "{name}");
        }
    }
}
