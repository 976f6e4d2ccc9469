//! The live preview against a real container running our test app
//! (`testbins/preview-upstream`): bodies, HTML injection, CSP, headers,
//! redirects and cookies, WebSockets, host-based origins, 502s, console
//! reports, and every SSRF attempt we can think of.

mod common;
#[path = "preview_support/mod.rs"]
mod support;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use support::*;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn non_html_bodies_are_byte_exact_both_ways() {
    let p = Preview::start().await;
    let r = p.get("/bin").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], "65536");
    assert_eq!(r.bytes().await.unwrap().to_vec(), pattern(64 * 1024));

    let r = p.get("/large").await;
    assert_eq!(r.headers()["content-type"], "application/octet-stream");
    assert_eq!(r.bytes().await.unwrap().to_vec(), pattern(1024 * 1024));

    // A request body streams up and back unchanged.
    let body = pattern(3 * 1024 * 1024 + 17);
    let r = p
        .http
        .post(p.url("/echo"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().to_vec(), body);

    // Every method passes through.
    for method in ["PUT", "PATCH", "DELETE", "OPTIONS"] {
        let r = p
            .http
            .request(method.parse().unwrap(), p.url("/headers"))
            .send()
            .await
            .unwrap();
        assert_eq!(json_of(r).await["method"], method);
    }
}

fn content_length(r: &reqwest::Response) -> Option<usize> {
    r.headers()
        .get("content-length")
        .map(|v| v.to_str().unwrap().parse().unwrap())
}

/// The address the upstream app saw the request come from: one per
/// upstream connection.
async fn upstream_peer(p: &Preview, path: &str) -> String {
    let r = p.get(path).await;
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

#[tokio::test]
async fn upstream_connections_are_kept_alive_and_replaced_when_the_app_closes_them() {
    let p = Preview::start().await;
    let first = upstream_peer(&p, "/conn").await;
    for _ in 0..3 {
        assert_eq!(
            upstream_peer(&p, "/conn").await,
            first,
            "requests on one browser connection reuse its upstream connection"
        );
    }
    // The app answers with `Connection: close`: the browser's connection
    // stays open, and the next request goes out on a new upstream one.
    assert_eq!(upstream_peer(&p, "/conn-close").await, first);
    let after = upstream_peer(&p, "/conn").await;
    assert_ne!(after, first, "a closed upstream connection is not reused");
    assert_eq!(upstream_peer(&p, "/conn").await, after);
}

#[tokio::test]
async fn html_gets_exactly_one_script_first_in_head_plain_and_gzip() {
    let p = Preview::start().await;
    let r = p.get("/").await;
    assert_eq!(r.status(), 200);
    let length = content_length(&r);
    let page = r.text().await.unwrap();
    assert_eq!(length, Some(page.len()), "the rewritten page's own length");
    let (nonce, count) = nonce_of(&page);
    assert_eq!(count, 1, "{page}");
    assert!(
        page.starts_with(&format!(
            "<!doctype html>\n<html><head><script nonce=\"{nonce}\">"
        )),
        "{page}"
    );
    assert!(page.contains(&format!("\"/preview/{}/__studio/console\"", p.sid)));
    assert!(page.ends_with("<title>upstream</title></head><body><h1>hello preview</h1><a href=\"/next\">next</a></body></html>\n"));

    let r = p
        .http
        .get(p.url("/gzip.html"))
        .header("accept-encoding", "gzip, zstd")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers().get("content-encoding").is_none(),
        "decoded, so no coding: {:?}",
        r.headers()
    );
    let length = content_length(&r);
    let page = r.text().await.unwrap();
    assert_eq!(length, Some(page.len()), "the decoded page's length");
    assert_eq!(nonce_of(&page).1, 1);
    assert!(page.contains("<h1>hello preview</h1>"), "{page}");

    // A page streamed without a length stays streamed (chunked).
    let r = p.get("/chunked.html").await;
    assert_eq!(r.status(), 200);
    assert_eq!(content_length(&r), None);
    assert_eq!(r.headers()["transfer-encoding"], "chunked");
    let page = r.text().await.unwrap();
    assert_eq!(nonce_of(&page).1, 1);
    assert!(page.ends_with("</body></html>\n"), "{page}");

    // The 20 KB page arrives whole with one script.
    let page = p.get("/html20k").await.text().await.unwrap();
    assert_eq!(nonce_of(&page).1, 1);
    assert!(page.trim_end().ends_with("</body></html>"));

    // HEAD: headers only, no stale length or coding.
    let r = p
        .http
        .head(p.url("/gzip.html"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("content-encoding").is_none());
}

#[tokio::test]
async fn csp_from_header_and_meta_admits_only_our_nonce() {
    let p = Preview::start().await;
    let r = p.get("/csp-header.html").await;
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    let page = r.text().await.unwrap();
    let (nonce, _) = nonce_of(&page);
    assert_eq!(
        csp,
        format!("default-src 'none'; script-src 'self' 'nonce-{nonce}'; img-src https://img.example; connect-src 'self'")
    );

    let page = p.get("/csp-meta.html").await.text().await.unwrap();
    let (nonce2, count) = nonce_of(&page);
    assert_eq!(count, 1);
    assert_ne!(nonce, nonce2, "a fresh nonce per response");
    assert!(
        page.contains(&format!(
            "content=\"default-src 'self'; script-src 'self' 'nonce-{nonce2}'\""
        )),
        "{page}"
    );
}

#[tokio::test]
async fn forwarded_headers_are_set_and_hop_by_hop_ones_dropped() {
    let p = Preview::start().await;
    let r = p
        .http
        .get(p.url("/headers?q=1&r=%2F"))
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-real-ip", "6.6.6.6")
        .header("connection", "x-private")
        .header("x-private", "secret")
        .header("keep-alive", "timeout=5")
        .header("te", "trailers")
        .header("x-app", "kept")
        .send()
        .await
        .unwrap();
    let v = json_of(r).await;
    let h = &v["headers"];
    assert_eq!(
        v["uri"], "/headers?q=1&r=%2F",
        "prefix stripped, query kept: {v}"
    );
    assert_eq!(h["host"][0], "localhost:8080");
    assert_eq!(h["x-forwarded-for"][0], "127.0.0.1");
    assert_eq!(h["x-real-ip"][0], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"][0], "http");
    assert_eq!(
        h["x-forwarded-host"][0],
        format!("127.0.0.1:{}", p.server.addr.port())
    );
    assert_eq!(h["x-forwarded-prefix"][0], format!("/preview/{}", p.sid));
    assert_eq!(h["x-app"][0], "kept");
    for gone in ["x-private", "keep-alive", "te"] {
        assert!(h.get(gone).is_none(), "{gone} was forwarded: {v}");
    }
    assert!(
        h["connection"].is_null() || h["connection"][0] == "keep-alive",
        "{v}"
    );
}

#[tokio::test]
async fn redirects_and_cookies_stay_under_the_prefix() {
    let p = Preview::start().await;
    let r = p.get("/redirect").await;
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers()["location"],
        format!("/preview/{}/target?x=1", p.sid)
    );

    let r = p.get("/cookie").await;
    let cookies: Vec<&str> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(
        cookies,
        vec![
            format!("sid=abc; Path=/preview/{}/; HttpOnly", p.sid),
            format!("theme=dark; Path=/preview/{}/app", p.sid)
        ]
    );

    // Without the trailing slash, relative links would escape: redirect.
    let r = p
        .http
        .get(p.server.url(&format!("/preview/{}?a=b", p.sid)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 308);
    assert_eq!(r.headers()["location"], format!("/preview/{}/?a=b", p.sid));
}

async fn ws_echo(
    request: tokio_tungstenite::tungstenite::handshake::client::Request,
    addr: std::net::SocketAddr,
) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut ws, resp) = tokio_tungstenite::client_async(request, tcp)
        .await
        .expect("upgrade through the preview");
    assert_eq!(resp.status(), 101);
    for i in 0..5 {
        ws.send(Message::Text(format!("ping {i}").into()))
            .await
            .unwrap();
        let got = tokio::time::timeout(WAIT, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(got, Message::Text(format!("ping {i}").into()));
    }
    let big = pattern(200_000);
    ws.send(Message::Binary(big.clone().into())).await.unwrap();
    let got = tokio::time::timeout(WAIT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got.into_data().to_vec(), big);
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn websocket_upgrades_pass_through_both_ways() {
    let p = Preview::start().await;
    let url = format!("ws://{}/preview/{}/ws", p.server.addr, p.sid);
    ws_echo(url.into_client_request().unwrap(), p.server.addr).await;

    // And on the host-based origin.
    let mut req = format!("ws://{}/ws", p.preview_host())
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("host", p.preview_host().parse().unwrap());
    ws_echo(req, p.server.addr).await;
}

#[tokio::test]
async fn preview_websockets_are_capped_per_session_and_end_with_it() {
    let p = Preview::start().await;
    let url = format!("ws://{}/preview/{}/ws", p.server.addr, p.sid);
    let mut open = Vec::new();
    for _ in 0..32 {
        let (ws, resp) = tokio_tungstenite::connect_async(&url)
            .await
            .expect("an upgrade within the cap");
        assert_eq!(resp.status(), 101);
        open.push(ws);
    }
    // The 33rd is refused in the error shape, before the app is asked.
    let req = p
        .http
        .get(p.url("/ws"))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(req.status(), 429);
    let h = req.headers();
    assert_eq!(h["x-ratelimit-limit"], "32");
    assert_eq!(h["x-ratelimit-remaining"], "0");
    assert_eq!(h["retry-after"], "1");
    let body = json_of(req).await;
    assert_eq!(body["error"], "RateLimitError", "{body}");
    assert!(body["message"].as_str().unwrap().contains("32"), "{body}");
    // Closing one gives its place back.
    let mut first = open.remove(0);
    first.close(None).await.unwrap();
    while first.next().await.is_some() {}
    drop(first);
    let again = eventually("a freed place to be taken again", || async {
        tokio_tungstenite::connect_async(&url).await.ok()
    })
    .await;
    open.push(again.0);
    // Removing the session ends every tunnel it holds.
    let (status, _) = p.server.delete(&format!("/api/containers/{}", p.sid)).await;
    assert_eq!(status, 200);
    for mut ws in open {
        let end =
            tokio::time::timeout(WAIT, async { while let Some(Ok(_)) = ws.next().await {} }).await;
        assert!(end.is_ok(), "a tunnel outlived its session");
    }
}

#[tokio::test]
async fn an_open_preview_websocket_keeps_its_session_alive() {
    let server = Server::builder()
        .args(["--session-timeout", "2s", "--cleanup-interval", "500ms"])
        .start()
        .await;
    let mut p = Preview::start_with(server).await;
    let url = format!("ws://{}/preview/{}/ws", p.server.addr, p.sid);
    let (mut hot_reload, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    // The terminal goes away: the preview socket is all that is left.
    let terminal = std::mem::replace(&mut p.ws, p.server.ws().await);
    terminal.close().await;
    // Sweeps well past the timeout, without a request to the session.
    let from = p.server.metric("studio_sweeps_total").await;
    eventually("sweeps past the session timeout", || async {
        (p.server.metric("studio_sweeps_total").await >= from + 8).then_some(())
    })
    .await;
    hot_reload
        .send(Message::Text("still here".into()))
        .await
        .unwrap();
    let echo = tokio::time::timeout(WAIT, hot_reload.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(echo, Message::Text("still here".into()));
    // Closed, the session idles out like any other.
    hot_reload.close(None).await.unwrap();
    drop(hot_reload);
    eventually("the idle session to expire", || async {
        let (_, list) = p.server.get("/api/containers").await;
        list.as_array().unwrap().is_empty().then_some(())
    })
    .await;
}

#[tokio::test]
async fn host_based_origin_serves_absolute_paths_and_reports() {
    let mut p = Preview::start().await;
    let get = |host: String, path: &str| p.http.get(p.server.url(path)).header("host", host).send();
    let r = get(p.preview_host(), "/").await.unwrap();
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert_eq!(nonce_of(&page).1, 1);
    assert!(
        page.contains("\"/__studio/console\""),
        "host origin reports to its own root"
    );

    // Absolute paths need no rewriting on an origin of its own.
    let r = get(p.preview_host(), "/redirect").await.unwrap();
    assert_eq!(r.headers()["location"], "/target?x=1");
    let v = json_of(get(p.preview_host(), "/headers").await.unwrap()).await;
    assert_eq!(v["uri"], "/headers");
    assert_eq!(v["headers"]["x-forwarded-host"][0], p.preview_host());
    assert!(v["headers"].get("x-forwarded-prefix").is_none());

    // Browsers lower-case host names; the session is still found.
    let r = get(p.preview_host().to_ascii_lowercase(), "/small")
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ok\n");

    // Even /api paths on a preview origin go to the app, never the API.
    let r = get(p.preview_host(), "/api/containers").await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.text().await.unwrap(), "no such path /api/containers");

    // Another port of the same container: nothing there, 502.
    let r = get(format!("9-{}.localhost", p.sid), "/").await.unwrap();
    assert_eq!(r.status(), 502);

    // A console report on the host origin.
    let r = p
        .http
        .post(p.server.url("/__studio/console"))
        .header("host", p.preview_host())
        .header("content-type", "application/json")
        .body(json!({"level": "info", "args": ["via host"], "url": "http://x/"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let msg = p.ws.expect("console").await;
    assert_eq!(msg["args"][0], "via host");
}

/// Dev servers often listen on localhost only (Vite's default): the preview
/// reaches them from inside the container's network namespace. That needs
/// the server to run as root, as it does here and in CI.
#[tokio::test]
async fn a_dev_server_listening_on_localhost_only_is_reachable() {
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    assert!(
        root,
        "needs root (as scripts/test and CI run): the preview enters the container's network namespace"
    );
    let server = Server::start().await;
    let mut ws = server.ws().await;
    let (sid, _) = ws.create(json!({})).await;
    ws.run(
        &sid,
        "mkdir -p /tmp/www && echo local-only-$((6*7)) > /tmp/www/index.html",
    )
    .await;
    ws.input(&sid, "httpd -f -p 127.0.0.1:8081 -h /tmp/www &\n")
        .await;
    let (status, body) = server
        .post(
            "/api/preview/configure",
            &json!({"sessionId": sid, "port": 8081}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let url = server.url(&format!("/preview/{sid}/index.html"));
    let http = reqwest::Client::new();
    let page = eventually("the localhost-only server through the preview", || {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let r = http.get(&url).send().await.ok()?;
            (r.status() == 200).then_some(())?;
            r.text().await.ok()
        }
    })
    .await;
    assert!(page.contains("local-only-42"), "{page:?}");
}

#[tokio::test]
async fn unreachable_upstream_is_502_json_or_a_retrying_page() {
    let server = Server::start().await;
    let (sid, _) = server.create_rest().await;
    let http = reqwest::Client::new();
    let url = server.url(&format!("/preview/{sid}/"));

    // Not configured yet.
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 502);
    let v = r.json::<serde_json::Value>().await.unwrap();
    assert_eq!(v["error"], "PreviewUnavailableError");
    assert_eq!(v["retryable"], true);
    assert_eq!(v["statusCode"], 502);
    assert!(
        v["message"].as_str().unwrap().contains("configure_preview"),
        "{v}"
    );

    // Configured, nothing listening.
    let (status, _) = server
        .post(
            "/api/preview/configure",
            &json!({"sessionId": sid, "port": 3999}).to_string(),
        )
        .await;
    assert_eq!(status, 200);
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 502);
    let v = r.json::<serde_json::Value>().await.unwrap();
    assert_eq!(v["error"], "PreviewUnavailableError");
    assert!(v["message"].as_str().unwrap().contains("3999"), "{v}");

    let r = http
        .get(&url)
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let page = r.text().await.unwrap();
    assert!(
        page.contains("http-equiv=\"refresh\" content=\"2\""),
        "{page}"
    );
}

#[tokio::test]
async fn console_reports_reach_the_sessions_websockets_within_limits() {
    // 400 reports at once are 400 connections from one address: all let in,
    // so that what refuses them is the reports' own limit.
    let p = Preview::start_with(
        Server::builder()
            .args(["--max-connections-per-ip", "1000"])
            .start()
            .await,
    )
    .await;
    let mut ws = p.ws;
    let mut other = p.server.ws().await;
    other
        .send(json!({"type": "attach", "sessionId": p.sid}))
        .await;
    other.expect("attached").await;
    let post = |body: String, ctype: &'static str| {
        p.http
            .post(
                p.server
                    .url(&format!("/preview/{}/__studio/console", p.sid)),
            )
            .header("content-type", ctype)
            .body(body)
            .send()
    };
    let report =
        json!({"level": "warn", "args": ["careful", 42, {"a": [1, 2]}], "url": "http://page/"});
    assert_eq!(
        post(report.to_string(), "application/json")
            .await
            .unwrap()
            .status(),
        204
    );
    for w in [&mut ws, &mut other] {
        let m = w.expect("console").await;
        assert_eq!(m["sessionId"], p.sid.as_str());
        assert_eq!(m["level"], "warn");
        assert_eq!(m["args"], json!(["careful", 42, {"a": [1, 2]}]));
        assert_eq!(m["url"], "http://page/");
        assert!(m["timestamp"].as_u64().unwrap() > 1_600_000_000_000);
    }

    let bad = [
        ("{not json".to_string(), "application/json", 400),
        (
            json!({"level": "shout", "args": [], "url": ""}).to_string(),
            "application/json",
            400,
        ),
        (
            json!({"level": "log", "args": "x", "url": ""}).to_string(),
            "application/json",
            400,
        ),
        (
            json!({"level": "log", "args": [], "url": "", "extra": 1}).to_string(),
            "application/json",
            400,
        ),
        (report.to_string(), "text/plain", 400),
        (
            json!({"level": "log", "args": ["x".repeat(70_000)], "url": ""}).to_string(),
            "application/json",
            413,
        ),
    ];
    for (body, ctype, want) in bad {
        let r = post(body.clone(), ctype).await.unwrap();
        assert_eq!(r.status(), want, "{}", &body[..body.len().min(80)]);
        let v: serde_json::Value = r.json().await.unwrap();
        assert!(v["error"].is_string() && v["statusCode"] == want, "{v}");
    }

    // A flood is cut off with 429: 400 reports at once, against a burst of
    // 100 and 100 more a second (sent together, so a slow machine cannot
    // spread them out over seconds).
    let flood = (0..400).map(|_| post(report.to_string(), "application/json"));
    let mut limited = 0;
    for r in futures_util::future::join_all(flood).await {
        let r = r.unwrap();
        if r.status() == 429 {
            assert!(r.headers().contains_key("retry-after"));
            limited += 1;
        }
    }
    assert!(limited > 0, "400 reports in a burst were all accepted");
}

#[tokio::test]
async fn ssrf_attempts_name_nothing_but_a_session_and_a_port() {
    let p = Preview::start().await;
    let sid = p.sid.clone();
    // Configure: exactly sessionId and an integer port 1..65535.
    for body in [
        json!({"sessionId": sid, "port": 8080, "host": "169.254.169.254"}),
        json!({"sessionId": sid, "port": 8080, "url": "http://example.com"}),
        json!({"sessionId": sid, "port": 8080, "target": "http://127.0.0.1:22"}),
        json!({"sessionId": sid, "port": "8080"}),
        json!({"sessionId": sid, "port": 0}),
        json!({"sessionId": sid, "port": 65536}),
        json!({"sessionId": sid, "port": -1}),
        json!({"sessionId": sid, "port": 80.5}),
        json!({"sessionId": sid}),
        json!({"port": 8080}),
    ] {
        let (status, v) = p
            .server
            .post("/api/preview/configure", &body.to_string())
            .await;
        assert_eq!(status, 400, "{body} -> {v}");
        assert_eq!(v["error"], "ValidationError");
    }
    let (status, v) = p
        .server
        .post(
            "/api/preview/configure",
            &json!({"sessionId": "session-AAAAAAAAAAAAAAAAAAAAAA", "port": 80}).to_string(),
        )
        .await;
    assert_eq!(
        (status, v["error"].as_str()),
        (404, Some("ContainerNotFoundError"))
    );
    let mut ws = p.server.ws().await;
    ws.send(json!({"type": "configure_preview", "sessionId": sid, "port": 8080, "host": "evil"}))
        .await;
    assert_eq!(ws.expect("error").await["error"], "ValidationError");
    ws.send(json!({"type": "configure_preview", "sessionId": sid, "port": 8080}))
        .await;
    let ok = ws.expect("preview_configured").await;
    assert_eq!(ok["previewUrl"], format!("/preview/{sid}"));
    assert_eq!(ok["targetUrl"], "http://localhost:8080");

    // Unknown sessions on preview URLs: 404, path or host.
    let r = p
        .http
        .get(p.server.url("/preview/session-AAAAAAAAAAAAAAAAAAAAAA/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = p
        .http
        .get(p.server.url("/"))
        .header("host", "8080-session-AAAAAAAAAAAAAAAAAAAAAA.localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(json_of(r).await["error"], "ContainerNotFoundError");

    // `..` cannot climb out of the prefix: it ends at the app's root, in the container.
    let addr = p.server.addr;
    let (head, body) =
        raw(addr, &format!("GET /preview/{sid}/../../api/containers HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")).await;
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    assert_eq!(
        String::from_utf8_lossy(&body),
        "no such path /api/containers"
    );
    let (_, body) =
        raw(addr, &format!("GET /preview/{sid}/%2e%2e/%2e%2e/headers HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")).await;
    assert!(
        String::from_utf8_lossy(&body).contains("\"uri\":\"/headers\""),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let (_, body) =
        raw(addr, &format!("GET /preview/{sid}//169.254.169.254/headers HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")).await;
    assert_eq!(
        String::from_utf8_lossy(&body),
        "no such path /169.254.169.254/headers"
    );

    // A Host or absolute-form URI naming another machine is not a name this
    // server answers to: refused (DNS-rebinding check) before any routing.
    let (head, body) = raw(
        addr,
        &format!("GET http://169.254.169.254/preview/{sid}/headers HTTP/1.1\r\nHost: 169.254.169.254\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"], "ValidationError", "{v}");
    // Only the authority names another machine: still refused.
    let (head, _) = raw(
        addr,
        &format!("GET http://169.254.169.254/preview/{sid}/headers HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    // A foreign domain is not a preview host, nor a name of ours.
    let (head, body) = raw(
        addr,
        &format!("GET / HTTP/1.1\r\nHost: 8080-{sid}.evil.example\r\nConnection: close\r\n\r\n"),
    )
    .await;
    let body = String::from_utf8_lossy(&body);
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    assert!(!body.contains("hello preview"), "{body}");
}

/// SIGTERM while a request through the preview never ends (an upload that
/// keeps its body open): the server still exits within the contract's 10 s.
#[tokio::test]
async fn shutdown_ends_within_ten_seconds_with_a_request_in_flight() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut p = Preview::start().await;
    let mut s = tokio::net::TcpStream::connect(p.server.addr).await.unwrap();
    let head = format!(
        "POST /preview/{}/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        p.sid
    );
    s.write_all(head.as_bytes()).await.unwrap();
    // The upstream echoes the first chunk: the request is in flight.
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&seen).contains("hello") {
        let n = tokio::time::timeout(WAIT, s.read(&mut buf))
            .await
            .expect("echo of the first chunk")
            .unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    let started = std::time::Instant::now();
    let status = p.server.stop().await;
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "exited after {:?}",
        started.elapsed()
    );
}

/// The preview port is part of the session: a restarted server re-adopts
/// the session with it, and the preview works without configuring again.
#[tokio::test]
async fn the_preview_port_survives_a_server_restart() {
    let mut p = Preview::start().await;
    assert_eq!(p.get("/small").await.text().await.unwrap(), "ok\n");
    p.server.keep_containers();
    p.server.stop().await;
    let second = Server::builder().instance(&p.server.instance).start().await;
    let url = second.url(&format!("/preview/{}/small", p.sid));
    let body = eventually("the preview after the restart", || {
        let (http, url) = (p.http.clone(), url.clone());
        async move {
            let r = http.get(&url).send().await.ok()?;
            (r.status() == 200).then_some(r.text().await.ok()?)
        }
    })
    .await;
    assert_eq!(body, "ok\n");
    let (_, info) = second.get(&format!("/api/containers/{}", p.sid)).await;
    assert_eq!(info["previewPort"], PORT);
}

/// A stopped container's preview answers 502 (never whatever now holds its
/// old address); once the session's terminal starts the container again,
/// the preview reaches the app in it again, through a fresh route.
#[tokio::test]
async fn a_stopped_container_is_never_reached_and_its_restart_is_followed() {
    let mut p = Preview::start().await;
    let cid = p.cid.clone();
    assert_eq!(p.get("/small").await.status(), 200);
    docker(&["stop", "-t", "1", &cid]);
    let r = p.get("/small").await;
    assert_eq!(r.status(), 502);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "PreviewUnavailableError");

    // Input starts the container and a shell again; the app is started anew.
    let sid = p.sid.clone();
    p.ws.input(&sid, &format!("preview-upstream {PORT} &\n"))
        .await;
    let url = p.url("/small");
    let http = p.http.clone();
    eventually("the preview after the restart", || {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let r = http.get(&url).send().await.ok()?;
            (r.status() == 200).then_some(())
        }
    })
    .await;
}

/// Pages the rewriter cannot finish get a clear 502 before anything is
/// sent (corrupt compression), and one that decodes to far too much (a
/// decompression bomb: 64 KB of gzip for 64 MiB) is cut off at the limit.
#[tokio::test]
async fn pages_that_cannot_be_rewritten_are_502s_and_bombs_are_stopped() {
    let p = Preview::start().await;
    let rss = || -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", p.server.pid().unwrap())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    };
    for path in ["/badgzip.html"] {
        let r = p.get(path).await;
        assert_eq!(r.status(), 502, "{path}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"], "PreviewUnavailableError", "{path}: {body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("could not be rewritten"),
            "{path}: {body}"
        );
    }
    // The bomb stops at the decoding limit (16 MiB), long before its
    // 64 MiB: a 502 if nothing was sent yet, else a response cut off.
    let mut r = p.get("/bomb.html").await;
    let status = r.status();
    let mut got = 0usize;
    let cut = loop {
        match r.chunk().await {
            Ok(Some(b)) => got += b.len(),
            Err(_) => break true,
            Ok(None) => break false,
        }
    };
    assert!(
        status == 502 || cut,
        "the bomb's page was sent whole ({status}, {got} bytes)"
    );
    assert!(got <= 16 * 1024 * 1024, "{got} bytes sent");
    // The server's peak resident size stays far under what it decoded.
    let peak_kib = rss();
    assert!(peak_kib < 96 * 1024, "peak RSS {peak_kib} KiB");
    // The connection and the preview still work.
    assert_eq!(p.get("/small").await.status(), 200);
}

/// Configuring the port the preview already has is a no-op that costs
/// nothing later, and the latest port is what is recorded the moment the
/// answer comes, so a restart right after restores it.
#[tokio::test]
async fn the_latest_preview_port_is_recorded_before_the_answer() {
    let mut p = Preview::start().await;
    let configure = |port: u16| {
        let body = json!({"sessionId": p.sid, "port": port}).to_string();
        let server = &p.server;
        async move { server.post("/api/preview/configure", &body).await }
    };
    for _ in 0..2 {
        let (status, body) = configure(PORT).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(p.server.recorded()[&p.sid]["previewPort"], PORT);
    }
    let (status, _) = configure(9999).await;
    assert_eq!(status, 200);
    assert_eq!(p.server.recorded()[&p.sid]["previewPort"], 9999);
    let (status, _) = configure(PORT).await;
    assert_eq!(status, 200);
    assert_eq!(p.server.recorded()[&p.sid]["previewPort"], PORT);
    // Killed at once (no graceful stop): the record is already there.
    p.server.keep_containers();
    p.server.kill().await;
    let second = Server::builder().instance(&p.server.instance).start().await;
    let info = eventually("re-adoption", || async {
        let (status, info) = second.get(&format!("/api/containers/{}", p.sid)).await;
        (status == 200).then_some(info)
    })
    .await;
    assert_eq!(info["previewPort"], PORT);
}

/// What the app sends that it must not, or that the preview must read
/// right: the server's own cookie names, a page that does not say it is
/// HTML, a page in UTF-16, and a request body the browser broke.
#[tokio::test]
async fn app_responses_and_client_bodies_are_read_the_way_browsers_and_the_contract_need() {
    let p = Preview::start().await;
    // The app cannot set (or shadow) the preview's own cookie.
    let r = p.get("/evil-cookie").await;
    let cookies: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    assert!(cookies[0].starts_with("mine=1"), "{cookies:?}");

    // No Content-Type, HTML inside: browsers show it as HTML, so it gets
    // the console script like any page.
    let r = p.get("/no-type").await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert_eq!(page.matches("<script nonce=").count(), 1, "{page}");

    // UTF-16 (declared, or only a byte order mark): untouched, byte for byte.
    let expected: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(
            "<!doctype html>\n<html><head><title>upstream</title></head><body><h1>hello preview</h1><a href=\"/next\">next</a></body></html>\n"
                .encode_utf16()
                .flat_map(|u| u.to_le_bytes()),
        )
        .collect();
    for path in ["/utf16.html", "/bom16.html"] {
        let r = p.get(path).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.bytes().await.unwrap().to_vec(), expected, "{path}");
    }

    // A chunk size no one can send: the client's error, in the error shape.
    let request = format!(
        "POST /preview/{}/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\nx\r\n",
        p.sid
    );
    let (head, body) = raw(p.server.addr, &request).await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"], "ValidationError", "{body}");
}

/// An app that takes the request and never answers gets `--preview-timeout`,
/// then a 504 the browser can retry (HTML for a page, JSON otherwise).
#[tokio::test]
async fn an_app_that_never_answers_gets_a_504_after_the_preview_timeout() {
    let p = Preview::start_with(
        Server::builder()
            .args(["--preview-timeout", "1s"])
            .start()
            .await,
    )
    .await;
    let started = std::time::Instant::now();
    let r = p.get("/hang").await;
    assert_eq!(r.status(), 504);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "PreviewUnavailableError");
    assert_eq!(body["retryable"], true);
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let r = p
        .http
        .get(p.url("/hang"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 504);
    assert!(r.text().await.unwrap().contains("retries"));
}

/// No previewed page runs on the server's origin: a browser opening a
/// path-based preview is sent to the preview's own origin, and whatever is
/// served by path is sandboxed; clients without fetch metadata (agents,
/// scripts) keep the path-based preview as it was.
#[tokio::test]
async fn path_previews_send_browsers_to_the_previews_own_origin() {
    let p = Preview::start().await;
    let navigate = |url: String| {
        p.http
            .get(url)
            .header("sec-fetch-mode", "navigate")
            .header("sec-fetch-dest", "document")
            .header("sec-fetch-site", "none")
    };
    let r = navigate(p.url("/index.html?x=1")).send().await.unwrap();
    assert_eq!(r.status(), 307);
    let port = p.server.addr.port();
    assert_eq!(
        r.headers()["location"],
        format!("http://{PORT}-{}.localhost:{port}/index.html?x=1", p.sid).as_str()
    );

    // Not a navigation (a script, an agent): proxied as before, sandboxed.
    let r = p.get("/index.html").await;
    assert_eq!(r.status(), 200);
    let csp: Vec<&str> = r
        .headers()
        .get_all("content-security-policy")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    let sandbox = csp
        .iter()
        .find(|c| c.starts_with("sandbox"))
        .expect("a sandbox policy");
    assert!(sandbox.contains("allow-scripts"), "{sandbox}");
    assert!(!sandbox.contains("allow-same-origin"), "{sandbox}");
    // The app's own policy is kept beside it.
    let r = p.get("/csp-header.html").await;
    let n = r
        .headers()
        .get_all("content-security-policy")
        .iter()
        .count();
    assert_eq!(n, 2, "the app's policy and the sandbox");
    // Errors of the path-based preview are sandboxed too.
    let r = p.get("/hang-not-there").await;
    assert!(r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .starts_with("sandbox"));
}

/// With tokens on, the redirect carries a link for the new origin, which
/// trades it for that origin's own cookie; the cookie then opens the
/// preview's own pages and navigations, never another page's requests.
#[tokio::test]
async fn with_tokens_the_preview_origin_gets_its_own_link_and_cookie() {
    let server = Server::builder()
        .args(["--api-token", "tok-a"])
        .start()
        .await;
    let auth = ("authorization", "Bearer tok-a");
    let mut ws = Ws::connect_with(&server.ws_url(), &[auth]).await;
    let (sid, _) = ws.create(json!({})).await;
    ws.input(&sid, &format!("preview-upstream {PORT} &\n"))
        .await;
    let r = server
        .http
        .post(server.url("/api/preview/configure"))
        .header(auth.0, auth.1)
        .json(&json!({"sessionId": sid, "port": PORT}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let link: serde_json::Value = r.json().await.unwrap();
    let link = link["previewUrl"].as_str().unwrap().to_string();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // Opened in a browser: to the preview's own origin, with a fresh link.
    let r = http
        .get(server.url(&link.replace(&format!("/preview/{sid}"), &format!("/preview/{sid}/"))))
        .header("sec-fetch-mode", "navigate")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 307);
    let to = r.headers()["location"].to_str().unwrap().to_string();
    let host = format!("{PORT}-{sid}.localhost:{}", server.addr.port());
    assert!(to.starts_with(&format!("http://{host}/?token=")), "{to}");
    // The preview host trades the link for its cookies (one for the preview
    // in a tab, a partitioned one for the preview inside the studio).
    let path = &to[format!("http://{host}").len()..];
    let r = http
        .get(server.url(path))
        .header("host", &host)
        .header("sec-fetch-mode", "navigate")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let cookies: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    assert!(cookies
        .iter()
        .any(|c| c.contains("Partitioned") && c.contains("SameSite=None")));
    let cookie = cookies[0].split(';').next().unwrap().to_string();
    let fetch = |extra: &'static [(&'static str, &'static str)]| {
        let mut req = http
            .get(server.url("/small"))
            .header("host", &host)
            .header("cookie", &cookie);
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        req.send()
    };
    eventually("the app to answer", || async {
        let r = fetch(&[("sec-fetch-site", "same-origin")]).await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    // Another page's request (a same-site fetch from another preview, or a
    // socket from another origin) does not get in with the cookie.
    let r = fetch(&[("sec-fetch-site", "same-site"), ("sec-fetch-mode", "cors")])
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = fetch(&[("origin", "http://3000-session-other.localhost:1")])
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}
