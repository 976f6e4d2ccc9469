//! `preview-upstream PORT`: the app the preview tests and the benchmark put
//! behind the proxy. It runs inside the busybox test image (statically
//! linked) and serves fixed content, so the proxy's output can be checked
//! byte for byte.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

type Body = http_body_util::combinators::BoxBody<Bytes, hyper::Error>;

pub const PAGE: &str = "<!doctype html>\n<html><head><title>upstream</title></head><body><h1>hello preview</h1><a href=\"/next\">next</a></body></html>\n";

/// 0, 1, … 255 repeated: any dropped, duplicated or reordered byte shows.
fn pattern(len: usize) -> Bytes {
    (0..len).map(|i| (i % 251) as u8).collect::<Vec<u8>>().into()
}

fn html_20k() -> String {
    let mut s = String::from("<!doctype html><html><head><meta charset=\"utf-8\"><title>20k</title></head><body>\n");
    let mut i = 0;
    while s.len() < 20 * 1024 - 64 {
        s.push_str(&format!("<p class=\"row\">row {i} lorem ipsum dolor sit amet</p>\n"));
        i += 1;
    }
    s.push_str("</body></html>\n");
    s
}

fn bomb() -> &'static Bytes {
    static BOMB: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();
    BOMB.get_or_init(|| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(b"<!doctype html><html><head><title>bomb</title></head><body>").unwrap();
        let block = vec![b'a'; 1024 * 1024];
        for _ in 0..64 {
            e.write_all(&block).unwrap();
        }
        e.finish().unwrap().into()
    })
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

fn resp(status: u16, ctype: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_str(ctype).unwrap());
    r
}

struct Content {
    bin: Bytes,
    large: Bytes,
    html20k: Bytes,
}

/// A page that tries to use the server it is previewed through (named in
/// `?api=`, e.g. `http://127.0.0.1:3333`): read the sessions, create one,
/// type into the session named in `?victim=`, and read the studio page's
/// storage. It logs what happened, which the console capture reports.
const ATTACK_PAGE: &str = r#"<!doctype html><html><head><title>attack</title></head><body><script>
var q = new URLSearchParams(location.search);
var victim = q.get("victim"), api = q.get("api");
fetch(api + "/api/containers", { credentials: "include" }).then(function (r) { return r.text(); })
  .then(function (t) { console.log("api read " + t.length); }, function () { console.log("api unreadable"); });
fetch(api + "/api/containers", { method: "POST", mode: "no-cors", credentials: "include", headers: { "content-type": "text/plain" }, body: "{}" })
  .then(function () { console.log("create sent"); }, function () { console.log("create failed"); });
var ws = new WebSocket(api.replace(/^http/, "ws") + "/ws");
ws.onopen = function () {
  ws.send(JSON.stringify({ type: "input", sessionId: victim, data: "echo PWNED > /tmp/pwned\n" }));
  console.log("ws open");
};
ws.onerror = function () { console.log("ws refused"); };
try {
  var w = window.open(api + "/", "_blank");
  setTimeout(function () {
    try { console.log("storage read " + JSON.stringify(w.sessionStorage)); } catch (e) { console.log("storage blocked"); }
  }, 500);
} catch (e) { console.log("storage blocked"); }
</script></body></html>"#;

const CONSOLE_PAGE: &str = r#"<!doctype html><html><head><title>console</title>
<script>
console.log("hello from preview", 42, {a: 1});
console.warn("careful");
setTimeout(function () { throw new Error("boom"); }, 0);
Promise.reject(new Error("nope"));
</script></head><body>console test</body></html>"#;

/// `peer`: the connection's remote address, which `/conn` reports so that
/// tests can tell whether the proxy reused an upstream connection.
async fn handle(req: Request<Incoming>, c: &'static Content, peer: SocketAddr) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    let html = "text/html; charset=utf-8";
    let r = match path.as_str() {
        "/" | "/index.html" => resp(200, html, PAGE),
        "/small" => resp(200, "text/plain", "ok\n"),
        "/conn" => resp(200, "text/plain", peer.to_string()),
        "/conn-close" => {
            let mut r = resp(200, "text/plain", peer.to_string());
            r.headers_mut().insert("connection", HeaderValue::from_static("close"));
            r
        }
        "/bin" => resp(200, "application/octet-stream", c.bin.clone()),
        "/large" => resp(200, "application/octet-stream", c.large.clone()),
        "/html20k" => resp(200, html, c.html20k.clone()),
        "/gzip.html" => {
            let mut r = resp(200, html, gzip(PAGE.as_bytes()));
            r.headers_mut().insert("content-encoding", HeaderValue::from_static("gzip"));
            r
        }
        "/bomb.html" => {
            // 64 MiB of one byte after a page head, gzipped to ~64 KB.
            let mut r = resp(200, html, bomb().clone());
            r.headers_mut().insert("content-encoding", HeaderValue::from_static("gzip"));
            r
        }
        "/badgzip.html" => {
            let mut r = resp(200, html, "this is not gzip at all");
            r.headers_mut().insert("content-encoding", HeaderValue::from_static("gzip"));
            r
        }
        "/csp-header.html" => {
            let mut r = resp(200, html, PAGE);
            r.headers_mut().insert(
                "content-security-policy",
                HeaderValue::from_static("default-src 'none'; script-src 'self'; img-src https://img.example"),
            );
            r
        }
        "/chunked.html" => {
            // A page sent in pieces without a length, as streaming
            // server-side rendering does.
            let parts: Vec<Result<hyper::body::Frame<Bytes>, hyper::Error>> = PAGE
                .as_bytes()
                .chunks(16)
                .map(|c| Ok(hyper::body::Frame::data(Bytes::copy_from_slice(c))))
                .collect();
            let body = http_body_util::StreamBody::new(futures_util::stream::iter(parts));
            let mut r = Response::new(BodyExt::boxed(body));
            r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
            r
        }
        "/csp-meta.html" => resp(
            200,
            html,
            "<!doctype html><html><head><meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'self'\"><title>m</title></head><body>meta</body></html>",
        ),
        "/console.html" => resp(200, html, CONSOLE_PAGE),
        "/attack.html" => resp(200, html, ATTACK_PAGE),
        // A strict policy: only same-origin scripts, no connections at all.
        "/csp-console.html" => {
            let mut r = resp(200, html, "<!doctype html><html><head><script src=\"app.js\"></script></head><body>csp</body></html>");
            r.headers_mut().insert(
                "content-security-policy",
                HeaderValue::from_static("default-src 'none'; script-src 'self'"),
            );
            r
        }
        "/app.js" => resp(200, "text/javascript", "console.error('from a strict page', location.pathname);"),
        "/redirect" => {
            let mut r = resp(302, "text/plain", "moved");
            r.headers_mut().insert("location", HeaderValue::from_static("/target?x=1"));
            r
        }
        "/cookie" => {
            let mut r = resp(200, "text/plain", "cookie");
            r.headers_mut().append("set-cookie", HeaderValue::from_static("sid=abc; Path=/; HttpOnly"));
            r.headers_mut().append("set-cookie", HeaderValue::from_static("theme=dark; Path=/app; Domain=localhost"));
            r
        }
        "/headers" => {
            let mut out = String::from("{");
            out.push_str(&format!("\"method\":{:?},\"uri\":{:?},\"headers\":{{", req.method().as_str(), req.uri().to_string()));
            let mut first = true;
            for name in req.headers().keys() {
                let vals: Vec<String> =
                    req.headers().get_all(name).iter().map(|v| format!("{:?}", String::from_utf8_lossy(v.as_bytes()))).collect();
                if !first {
                    out.push(',');
                }
                first = false;
                out.push_str(&format!("{:?}:[{}]", name.as_str(), vals.join(",")));
            }
            out.push_str("}}");
            resp(200, "application/json", out)
        }
        "/echo" => {
            // Streams the request body straight back.
            let mut r = Response::new(req.into_body().boxed());
            r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
            r
        }
        "/ws" => return Ok(websocket(req)),
        // Tries to set the server's own preview cookie, beside one of its own.
        "/evil-cookie" => {
            let mut r = resp(200, "text/plain", "cookies");
            r.headers_mut().append("set-cookie", HeaderValue::from_static("studio_preview=evil; Path=/; HttpOnly"));
            r.headers_mut().append("set-cookie", HeaderValue::from_static("Studio_Preview_p=evil; Path=/"));
            r.headers_mut().append("set-cookie", HeaderValue::from_static("mine=1; Path=/"));
            r
        }
        // Never answers.
        "/hang" => {
            std::future::pending::<()>().await;
            unreachable!()
        }
        // HTML that does not say so: browsers sniff it.
        "/no-type" => {
            let mut r = Response::new(full(PAGE));
            r.headers_mut().remove(CONTENT_TYPE);
            r
        }
        "/utf16.html" => resp(200, "text/html; charset=utf-16le", utf16(PAGE)),
        "/bom16.html" => resp(200, html, utf16(PAGE)),
        _ => resp(404, "text/plain", format!("no such path {path}")),
    };
    Ok(r)
}

/// UTF-16LE with a byte order mark.
fn utf16(s: &str) -> Vec<u8> {
    [0xFF, 0xFE]
        .into_iter()
        .chain(s.encode_utf16().flat_map(|u| u.to_le_bytes()))
        .collect()
}

fn websocket(mut req: Request<Incoming>) -> Response<Body> {
    let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
        return resp(400, "text/plain", "not a websocket request");
    };
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(up) = upgrade.await else { return };
        let mut ws = WebSocketStream::from_raw_socket(TokioIo::new(up), Role::Server, None).await;
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_text() || msg.is_binary() {
                if ws.send(msg).await.is_err() {
                    break;
                }
            } else if msg.is_close() {
                break;
            }
        }
    });
    let mut r = Response::new(full(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert("connection", HeaderValue::from_static("upgrade"));
    h.insert("upgrade", HeaderValue::from_static("websocket"));
    h.insert("sec-websocket-accept", HeaderValue::from_str(&derive_accept_key(key.as_bytes())).unwrap());
    r
}

fn main() {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(8080);
    // Where to listen: every address unless told (`127.0.0.1`, say).
    let addr: std::net::IpAddr = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
    let content: &'static Content = Box::leak(Box::new(Content {
        bin: pattern(64 * 1024),
        large: pattern(1024 * 1024),
        html20k: html_20k().into(),
    }));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind((addr, port)).await.expect("bind");
        eprintln!("preview-upstream listening on {port}");
        loop {
            let Ok((stream, peer)) = listener.accept().await else { continue };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| handle(req, content, peer));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
}
