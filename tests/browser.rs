//! Browser-facing protections against the real server: `Origin` on
//! upgrades and API writes, `Host` (DNS rebinding), CORS, request heads.

mod access_support;
mod common;

use access_support::*;
use common::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const A: &str = "token-alpha-0123456789";

#[tokio::test]
async fn foreign_origins_are_refused_on_upgrades_and_api_writes() {
    let server = Server::builder()
        .arg("--allowed-origin")
        .arg("https://ide.example.com")
        .start()
        .await;
    let port = server.addr.port();
    let evil = [("origin", "http://evil.example")];
    let r = ws_connect(&server, "/ws", &evil)
        .await
        .err()
        .expect("foreign origin refused");
    r.assert_error(403, "ValidationError");
    assert!(
        r.body["message"].as_str().unwrap().contains("evil.example"),
        "{}",
        r.body
    );
    // The preview's own origin is not the API's.
    let preview_origin = format!("http://3000-session-abc.localhost:{port}");
    let r = ws_connect(&server, "/", &[("origin", &preview_origin)])
        .await
        .err()
        .expect("preview origin refused");
    assert_eq!(r.status, 403);
    for ok in [
        format!("http://localhost:{port}"),
        format!("http://127.0.0.1:{port}"),
        "https://ide.example.com".into(),
    ] {
        let mut ws = ws_connect(&server, "/ws", &[("origin", &ok)])
            .await
            .unwrap_or_else(|r| panic!("{ok}: {r:?}"));
        still_open(&mut ws).await;
    }
    // No Origin (CLIs, SDKs) passes.
    let mut ws = ws_connect(&server, "/ws", &[]).await.unwrap();
    still_open(&mut ws).await;

    // A cross-site POST cannot create containers, whatever its content type.
    let r = send(&server, "POST", "/api/containers", &evil, Some("{}")).await;
    r.assert_error(403, "ValidationError");
    assert!(instance_containers(&server.instance).is_empty());
    // CORS is closed: no Access-Control-Allow-Origin, even for our own origin.
    for o in [
        "http://evil.example".to_string(),
        format!("http://localhost:{port}"),
    ] {
        let r = send(
            &server,
            "OPTIONS",
            "/api/containers",
            &[("origin", &o), ("access-control-request-method", "POST")],
            None,
        )
        .await;
        assert!(r.header("access-control-allow-origin").is_none());
        let r = get(&server, "/api/containers", &[("origin", &o)]).await;
        assert!(r.header("access-control-allow-origin").is_none());
    }
}

#[tokio::test]
async fn foreign_host_names_are_refused() {
    let server = Server::builder()
        .arg("--allowed-host")
        .arg("studio.test")
        .start()
        .await;
    let port = server.addr.port();
    for host in [
        "evil.example",
        &format!("evil.example:{port}"),
        "localhost.evil.example",
        "10.1.2.3",
        // Under the preview domain only preview hosts are this server's.
        &format!("evil.localhost:{port}"),
        &format!("3000-session-x.localhost:{port}"),
    ] {
        for path in ["/api/containers", "/api/health"] {
            let r = get(&server, path, &[("host", host)]).await;
            r.assert_error(400, "ValidationError");
            assert!(
                r.body["message"].as_str().unwrap().contains("Host"),
                "{}",
                r.body
            );
        }
    }
    let r = ws_connect(&server, "/ws", &[("host", "evil.example")])
        .await
        .err()
        .expect("refused");
    assert_eq!(r.status, 400);
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
        "studio.test".into(),
    ] {
        let r = get(&server, "/api/health", &[("host", &host)]).await;
        assert_eq!(r.status, 200, "{host}: {}", r.body);
    }
    // A preview host name is the preview's, whatever the path: an unknown
    // session there is the preview's 404, never the API's health.
    let preview_host = format!("3000-session-{}.localhost:{port}", "a".repeat(22));
    let r = get(&server, "/api/health", &[("host", &preview_host)]).await;
    r.assert_error(404, "ContainerNotFoundError");

    // No Host at all (HTTP/1.1 requires one; HTTP/1.0 clients are refused too).
    for version in ["1.1", "1.0"] {
        let request = format!("GET /api/health HTTP/{version}\r\nConnection: close\r\n\r\n");
        let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).await.unwrap();
        assert!(
            answer.starts_with(&format!("HTTP/{version} 400")),
            "{answer}"
        );
        assert!(answer.contains("\"ValidationError\""), "{answer}");
        assert!(answer.contains("Host"), "{answer}");
    }

    // Two Host headers, even a good one first: 400, not whichever one a
    // parser happens to read.
    let request = format!(
        "GET /api/health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nHost: evil.example\r\nConnection: close\r\n\r\n"
    );
    let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("More than one Host"), "{answer}");
}

#[tokio::test]
async fn oversize_request_heads_are_refused_clearly() {
    let server = Server::start().await;
    let big = "x".repeat(20 * 1024);
    let r = get(&server, "/api/containers", &[("x-padding", &big)]).await;
    assert_eq!(r.status, 431, "{}", r.body);
    assert_eq!(r.body["error"], "MessageTooLarge");
    assert!(
        r.body["message"].as_str().unwrap().contains("16384"),
        "{}",
        r.body
    );
    let long_path = format!("/api/containers/{}", "y".repeat(20 * 1024));
    assert_eq!(get(&server, &long_path, &[]).await.status, 431);
    assert_eq!(
        get(&server, "/api/containers", &[]).await.body,
        Value::Array(vec![])
    );
}

#[tokio::test]
async fn cors_opens_only_to_listed_origins_and_never_with_cookies() {
    let server = Server::builder()
        .args(["--api-token", A, "--cors-origin", "https://ide.example.com"])
        .start()
        .await;
    let ide = "https://ide.example.com";
    let pre = [
        ("origin", ide),
        ("access-control-request-method", "POST"),
        (
            "access-control-request-headers",
            "authorization, content-type",
        ),
    ];
    let r = send(&server, "OPTIONS", "/api/containers", &pre, None).await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some(ide));
    assert!(r
        .header("access-control-allow-headers")
        .unwrap()
        .contains("authorization"));
    assert!(r.header("access-control-allow-credentials").is_none());
    let auth = bearer(A);
    let r = get(
        &server,
        "/api/containers",
        &[("origin", ide), ("authorization", &auth)],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some(ide));
    assert!(r
        .header("access-control-expose-headers")
        .unwrap()
        .contains("x-ratelimit-remaining"));
    // A listed origin may write; its errors are readable too.
    let r = send(
        &server,
        "POST",
        "/api/preview/configure",
        &[("origin", ide), ("authorization", &auth)],
        Some("{}"),
    )
    .await;
    r.assert_error(400, "ValidationError");
    assert_eq!(r.header("access-control-allow-origin"), Some(ide));
    // Others get nothing.
    let evil = [
        ("origin", "https://evil.example"),
        ("access-control-request-method", "POST"),
    ];
    let r = send(&server, "OPTIONS", "/api/containers", &evil, None).await;
    assert!(r.header("access-control-allow-origin").is_none());
    let r = get(
        &server,
        "/api/containers",
        &[("origin", "https://evil.example"), ("authorization", &auth)],
    )
    .await;
    assert!(r.header("access-control-allow-origin").is_none());
}

/// The only pages on the server's own origin are path-based previews, so a
/// browser page there may not use the API or open a terminal: fetches say
/// `Sec-Fetch-Site: same-origin`, and WebSocket handshakes come with a
/// browser's `User-Agent` and the server's own `Origin`. Clients that are
/// not browser pages keep working, the own `Origin` included.
/// The only pages on the server's own origin are the studio's: they use
/// the API and the terminal like any client. A sandboxed page (a
/// path-based preview rendered anyway: its origin is `null`) may not.
#[tokio::test]
async fn the_studio_origin_uses_the_api_and_sandboxed_pages_cannot() {
    let server = Server::start().await;
    let own = format!("http://127.0.0.1:{}", server.addr.port());
    let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36";

    for site in ["same-origin", "none", "cross-site"] {
        let r = get(&server, "/api/containers", &[("sec-fetch-site", site)]).await;
        assert_eq!(r.status, 200, "{site}: {}", r.body);
    }
    let mut ws = ws_connect(&server, "/ws", &[("origin", &own), ("user-agent", chrome)])
        .await
        .expect("the studio page's own socket");
    still_open(&mut ws).await;

    let r = ws_connect(
        &server,
        "/ws",
        &[("origin", "null"), ("user-agent", chrome)],
    )
    .await
    .err()
    .expect("a sandboxed page's socket is refused");
    r.assert_error(403, "ValidationError");
    let r = send(
        &server,
        "POST",
        "/api/containers",
        &[("origin", "null")],
        Some("{}"),
    )
    .await;
    r.assert_error(403, "ValidationError");
    assert!(instance_containers(&server.instance).is_empty());
}
