//! Tokens, ownership, and the browser-facing checks, against the real
//! server and engine.

mod access_support;
mod common;

use access_support::*;
use common::*;
use serde_json::{json, Value};

const A: &str = "token-alpha-0123456789";
const B: &str = "token-bravo-9876543210";

fn two_token_server() -> ServerBuilder {
    Server::builder().args([
        "--api-token",
        A,
        "--api-token",
        B,
        "--rate-limit-auth",
        "off",
    ])
}

async fn create_as(server: &Server, token: &str) -> String {
    let auth = bearer(token);
    let r = send(
        server,
        "POST",
        "/api/containers",
        &[("authorization", &auth)],
        Some("{}"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["sessionId"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn tokens_right_wrong_and_missing() {
    let server = two_token_server().start().await;
    let r = get(&server, "/api/containers", &[]).await;
    r.assert_error(401, "AuthenticationError");
    assert_eq!(r.body["statusCode"], 401);
    assert!(
        r.body["message"].as_str().unwrap().contains("Missing"),
        "{}",
        r.body
    );
    let r = get(
        &server,
        "/api/containers",
        &[("authorization", "Bearer nope")],
    )
    .await;
    r.assert_error(401, "AuthenticationError");
    assert!(
        r.body["message"].as_str().unwrap().contains("Invalid"),
        "{}",
        r.body
    );
    let r = get(
        &server,
        "/api/containers",
        &[("authorization", "Basic dXNlcjpwdw==")],
    )
    .await;
    r.assert_error(401, "AuthenticationError");
    for t in [A, B] {
        let r = get(&server, "/api/containers", &[("authorization", &bearer(t))]).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // Health needs no token, and neither does being told which methods its
    // public paths take.
    assert_eq!(get(&server, "/api/health", &[]).await.status, 200);
    for (m, p) in [("TRACE", "/api/health"), ("POST", "/api/openapi.json")] {
        let r = send(&server, m, p, &[], None).await;
        r.assert_error(405, "ValidationError");
        assert_eq!(r.header("allow"), Some("GET,HEAD"), "{m} {p}");
    }
    // Every other route does, known or not, whatever the method.
    for (m, p) in [
        ("POST", "/api/containers"),
        ("PATCH", "/api/containers"),
        ("TRACE", "/api/containers/session-x"),
        ("POST", "/metrics"),
        ("DELETE", "/api/containers/session-x"),
        ("GET", "/api/containers/session-x"),
        ("POST", "/api/preview/configure"),
        ("GET", "/api/whatever"),
    ] {
        send(&server, m, p, &[], Some("{}"))
            .await
            .assert_error(401, "AuthenticationError");
    }
    assert!(instance_containers(&server.instance).is_empty());
}

/// A request without a token (or with credentials of another scheme, which
/// can never be right) is a 401 that does not use up the failure budget: a
/// client that forgot its token must not lock itself out.
#[tokio::test]
async fn only_wrong_tokens_count_against_the_authentication_limit() {
    let server = Server::builder().args(["--api-token", A]).start().await;
    for _ in 0..4 {
        for (m, p) in [
            ("GET", "/api/containers"),
            ("POST", "/api/containers"),
            ("DELETE", "/api/containers/session-x"),
        ] {
            send(&server, m, p, &[], Some("{}"))
                .await
                .assert_error(401, "AuthenticationError");
        }
        get(
            &server,
            "/api/containers",
            &[("authorization", "Basic dXNlcjpwdw==")],
        )
        .await
        .assert_error(401, "AuthenticationError");
    }
    for left in (0..5).rev() {
        let r = get(
            &server,
            "/api/containers",
            &[("authorization", "Bearer nope")],
        )
        .await;
        r.assert_error(401, "AuthenticationError");
        assert_eq!(r.rate(15 * 60), (5, left));
    }
    get(
        &server,
        "/api/containers",
        &[("authorization", "Bearer nope")],
    )
    .await
    .assert_limited(5);
    // Locked out now: the right token and a missing one alike get 429.
    get(&server, "/api/containers", &[("authorization", &bearer(A))])
        .await
        .assert_limited(5);
    get(&server, "/api/containers", &[]).await.assert_limited(5);
}

#[tokio::test]
async fn wrong_tokens_on_preview_urls_count_and_tell_nothing() {
    let server = Server::builder().args(["--api-token", A]).start().await;
    let sid = create_as(&server, A).await;
    let (a, wrong) = (bearer(A), bearer("token-guess-000000000"));
    // The owner's token reaches the session (no port yet: 502), ...
    let r = get(
        &server,
        &format!("/preview/{sid}/"),
        &[("authorization", &a)],
    )
    .await;
    assert_eq!(r.status, 502, "{}", r.body);
    // ... a wrong one is a 401 counted against the authentication limit,
    // for a real session and an unknown one alike: a preview URL is no
    // oracle for guessing tokens.
    for left in (0..5).rev() {
        let path = if left % 2 == 0 {
            format!("/preview/{sid}/")
        } else {
            "/preview/session-unknown000000000000/".to_string()
        };
        let r = get(&server, &path, &[("authorization", &wrong)]).await;
        r.assert_error(401, "AuthenticationError");
        assert_eq!(r.rate(15 * 60), (5, left), "{path}");
    }
    get(
        &server,
        &format!("/preview/{sid}/"),
        &[("authorization", &wrong)],
    )
    .await
    .assert_limited(5);
    // Locked out: the API and the preview refuse the right token too.
    get(
        &server,
        &format!("/preview/{sid}/"),
        &[("authorization", &a)],
    )
    .await
    .assert_limited(5);
    get(&server, "/api/containers", &[("authorization", &a)])
        .await
        .assert_limited(5);
}

#[tokio::test]
async fn websocket_upgrades_need_the_token_in_a_header_or_the_query() {
    let server = two_token_server().start().await;
    let r = ws_connect(&server, "/ws", &[])
        .await
        .err()
        .expect("no token refused");
    r.assert_error(401, "AuthenticationError");
    let r = ws_connect(&server, "/ws?token=wrong", &[])
        .await
        .err()
        .expect("wrong token refused");
    r.assert_error(401, "AuthenticationError");
    let auth = bearer(A);
    let mut ws = ws_connect(&server, "/ws", &[("authorization", &auth)])
        .await
        .expect("header token");
    still_open(&mut ws).await;
    let mut ws = ws_connect(&server, &format!("/?token={A}"), &[])
        .await
        .expect("query token");
    still_open(&mut ws).await;
    // The service banner (a plain GET) stays public.
    assert_eq!(get(&server, "/", &[]).await.status, 200);
}

#[tokio::test]
async fn failed_tokens_lock_the_ip_out_even_for_the_right_token() {
    let server = Server::builder()
        .args(["--api-token", A, "--rate-limit-auth", "3/15m"])
        .start()
        .await;
    for left in [2, 1, 0] {
        let r = get(
            &server,
            "/api/containers",
            &[("authorization", "Bearer guess")],
        )
        .await;
        r.assert_error(401, "AuthenticationError");
        assert_eq!(r.rate(15 * 60), (3, left));
    }
    // Now every attempt is refused, so a guesser cannot tell a right guess.
    let r = get(
        &server,
        "/api/containers",
        &[("authorization", "Bearer guess")],
    )
    .await;
    r.assert_limited(3);
    let auth = bearer(A);
    get(&server, "/api/containers", &[("authorization", &auth)])
        .await
        .assert_limited(3);
    ws_connect(&server, "/ws", &[("authorization", &auth)])
        .await
        .err()
        .unwrap()
        .assert_limited(3);
    // Health is still answered.
    assert_eq!(get(&server, "/api/health", &[]).await.status, 200);
}

#[tokio::test]
async fn sessions_belong_to_their_token_everywhere() {
    let mut server = two_token_server().start().await;
    let (a, b) = (bearer(A), bearer(B));
    let (ha, hb) = (
        [("authorization", a.as_str())],
        [("authorization", b.as_str())],
    );
    let sid = create_as(&server, A).await;

    // The owner label is a fingerprint, never the token or its digest.
    let cid = instance_containers(&server.instance)[0].clone();
    let label = docker_inspect("container", &cid).unwrap()["Config"]["Labels"]["studio.owner"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(label.len(), 32, "{label}");
    assert!(!label.contains("token") && !A.contains(&label), "{label}");

    // REST: the other token sees nothing and gets 404, never 403.
    assert_eq!(
        get(&server, &format!("/api/containers/{sid}"), &ha)
            .await
            .status,
        200
    );
    get(&server, &format!("/api/containers/{sid}"), &hb)
        .await
        .assert_error(404, "ContainerNotFoundError");
    let list_b = get(&server, "/api/containers", &hb).await;
    assert_eq!(list_b.body, json!([]));
    let list_a = get(&server, "/api/containers", &ha).await;
    assert_eq!(list_a.body[0]["sessionId"], sid.as_str());
    let body = json!({"sessionId": sid, "port": 3000}).to_string();
    send(&server, "POST", "/api/preview/configure", &hb, Some(&body))
        .await
        .assert_error(404, "ContainerNotFoundError");
    send(
        &server,
        "DELETE",
        &format!("/api/containers/{sid}"),
        &hb,
        None,
    )
    .await
    .assert_error(404, "ContainerNotFoundError");
    // Passing someone else's id to create does not hand it over.
    let retry = json!({"sessionId": sid}).to_string();
    let r = send(&server, "POST", "/api/containers", &hb, Some(&retry)).await;
    assert_eq!(r.status, 200);
    assert_ne!(r.body["sessionId"], sid.as_str());
    let b_sid = r.body["sessionId"].as_str().unwrap().to_string();

    // WebSocket: input, attach, resize and configure_preview all say 404.
    let mut wb = ws_connect(&server, "/ws", &hb).await.unwrap();
    for msg in [
        json!({"type": "input", "sessionId": sid, "data": "echo hi\n"}),
        json!({"type": "attach", "sessionId": sid}),
        json!({"type": "resize", "sessionId": sid, "cols": 80, "rows": 24}),
        json!({"type": "configure_preview", "sessionId": sid, "port": 3000}),
    ] {
        let e = ask(&mut wb, msg.clone()).await;
        assert_eq!(e["type"], "error", "{msg}: {e}");
        assert_eq!(e["error"], "ContainerNotFoundError", "{msg}: {e}");
    }
    // The owner's connection works.
    let mut wa = ws_connect(&server, "/ws", &ha).await.unwrap();
    let att = ask(&mut wa, json!({"type": "attach", "sessionId": sid})).await;
    assert_eq!(att["type"], "attached", "{att}");
    let cfg = ask(
        &mut wa,
        json!({"type": "configure_preview", "sessionId": sid, "port": 3000}),
    )
    .await;
    assert_eq!(cfg["type"], "preview_configured", "{cfg}");
    drop((wa, wb));

    // After a restart the re-adopted sessions keep their owners.
    server.keep_containers();
    server.stop().await;
    let server = two_token_server().instance(&server.instance).start().await;
    let found = eventually("re-adoption", || async {
        let r = get(&server, &format!("/api/containers/{sid}"), &ha).await;
        (r.status == 200).then_some(r)
    })
    .await;
    assert_eq!(found.body["sessionId"], sid.as_str());
    get(&server, &format!("/api/containers/{sid}"), &hb)
        .await
        .assert_error(404, "ContainerNotFoundError");
    assert_eq!(
        get(&server, &format!("/api/containers/{b_sid}"), &hb)
            .await
            .status,
        200
    );
    assert_eq!(
        send(
            &server,
            "DELETE",
            &format!("/api/containers/{sid}"),
            &ha,
            None
        )
        .await
        .status,
        200
    );
}

#[tokio::test]
async fn preview_urls_carry_a_link_token_only_when_auth_is_on() {
    let server = two_token_server().start().await;
    let sid = create_as(&server, A).await;
    let a = bearer(A);
    let body = json!({"sessionId": sid, "port": 3000}).to_string();
    let r = send(
        &server,
        "POST",
        "/api/preview/configure",
        &[("authorization", &a)],
        Some(&body),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let url = r.body["previewUrl"].as_str().unwrap();
    let prefix = format!("/preview/{sid}?token=");
    assert!(url.starts_with(&prefix), "{url}");
    assert!(
        !url.contains(A),
        "the API token never appears in a preview URL: {url}"
    );

    let open = Server::start().await;
    let (sid, _) = open.create_rest().await;
    let (status, body) = open
        .post(
            "/api/preview/configure",
            &json!({"sessionId": sid, "port": 3000}).to_string(),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["previewUrl"], format!("/preview/{sid}"));
}

#[tokio::test]
async fn sessions_per_owner_are_capped() {
    let server = two_token_server()
        .arg("--max-sessions-per-owner")
        .arg("1")
        .start()
        .await;
    let sid = create_as(&server, A).await;
    let a = bearer(A);
    let r = send(
        &server,
        "POST",
        "/api/containers",
        &[("authorization", &a)],
        Some("{}"),
    )
    .await;
    // A 429 like any other: the cap it hit (1, none left) and Retry-After.
    r.assert_limited(1);
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("Session limit"),
        "{}",
        r.body
    );
    let mut ws = ws_connect(&server, "/ws", &[("authorization", &a)])
        .await
        .unwrap();
    let e = ask(&mut ws, json!({"type": "create"})).await;
    assert_eq!(e["error"], "RateLimitError", "{e}");
    // Another owner has its own allowance; freeing a place lets A create again.
    create_as(&server, B).await;
    assert_eq!(
        send(
            &server,
            "DELETE",
            &format!("/api/containers/{sid}"),
            &[("authorization", &a)],
            None
        )
        .await
        .status,
        200
    );
    create_as(&server, A).await;
    assert_eq!(instance_containers(&server.instance).len(), 2);
}

/// A GET that follows no redirects.
async fn raw_get(server: &Server, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut req = client.get(server.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

fn cookie_of(r: &reqwest::Response) -> String {
    let sc = r.headers()["set-cookie"].to_str().unwrap().to_string();
    sc.split(';').next().unwrap().to_string()
}

#[tokio::test]
async fn previews_open_only_for_their_owner_and_the_app_never_sees_credentials() {
    let server = two_token_server().start().await;
    let port = server.addr.port();
    let (a, b) = (bearer(A), bearer(B));
    let mut ws = ws_connect(&server, "/ws", &[("authorization", &a)])
        .await
        .unwrap();
    let (sid, _) = ws.create(json!({})).await;
    ws.input(&sid, "preview-upstream 8080 &\n").await;
    let cfg = ask(
        &mut ws,
        json!({"type": "configure_preview", "sessionId": sid, "port": 8080}),
    )
    .await;
    let link = cfg["previewUrl"].as_str().unwrap().to_string();
    assert!(
        link.starts_with(&format!("/preview/{sid}?token=")),
        "{link}"
    );
    let sid_b = create_as(&server, B).await;

    // The owner's bearer token opens it (once the app is up).
    let small = format!("/preview/{sid}/small");
    eventually("the app to answer through the preview", || async {
        (raw_get(&server, &small, &[("authorization", &a)])
            .await
            .status()
            == 200)
            .then_some(())
    })
    .await;
    // Nobody else: no credentials, another token, a forged cookie: the same
    // 404 as an unknown session.
    for h in [
        vec![],
        vec![("authorization", b.as_str())],
        vec![("cookie", "studio_preview=9999999999.AAAA")],
    ] {
        let r = raw_get(&server, &small, &h).await;
        assert_eq!(r.status(), 404, "{h:?}");
        assert_eq!(
            r.json::<Value>().await.unwrap()["error"],
            "ContainerNotFoundError"
        );
    }

    // A browser tab: the link sets an HttpOnly cookie scoped to this preview
    // and drops the token from the address bar.
    let r = raw_get(&server, &link, &[]).await;
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], format!("/preview/{sid}").as_str());
    let sc = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        sc.contains("HttpOnly") && sc.contains(&format!("Path=/preview/{sid};")),
        "{sc}"
    );
    let cookie = cookie_of(&r);
    let with_cookie = format!("theme=dark; {cookie}");
    let r = raw_get(
        &server,
        &format!("/preview/{sid}/headers"),
        &[("cookie", &with_cookie), ("authorization", &a)],
    )
    .await;
    assert_eq!(r.status(), 200);
    let seen: Value = r.json().await.unwrap();
    let headers = &seen["headers"];
    assert!(headers.get("authorization").is_none(), "{seen}");
    assert_eq!(headers["cookie"], json!(["theme=dark"]), "{seen}");
    assert_eq!(
        raw_get(&server, &small, &[("cookie", &cookie)])
            .await
            .status(),
        200
    );
    // That cookie opens nothing else.
    let other = format!("/preview/{sid_b}/small");
    assert_eq!(
        raw_get(&server, &other, &[("cookie", &cookie)])
            .await
            .status(),
        404
    );
    // A link is bound to its session too.
    let swapped = link.replacen(&sid, &sid_b, 1);
    assert_eq!(raw_get(&server, &swapped, &[]).await.status(), 404);

    // Host-based previews: same rules, cookie on that origin only.
    let host = format!("8080-{sid}.localhost:{port}");
    let r = raw_get(&server, "/small", &[("host", &host)]).await;
    assert_eq!(r.status(), 404);
    let token = link.split("token=").nth(1).unwrap();
    let r = raw_get(&server, &format!("/?token={token}"), &[("host", &host)]).await;
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "/");
    let sc = r.headers()["set-cookie"].to_str().unwrap();
    assert!(
        sc.contains("Path=/;") && !sc.to_ascii_lowercase().contains("domain"),
        "{sc}"
    );
    let cookie = cookie_of(&r);
    let r = raw_get(&server, "/small", &[("host", &host), ("cookie", &cookie)]).await;
    assert_eq!(r.status(), 200);
    let r = raw_get(&server, "/small", &[("host", &host), ("authorization", &b)]).await;
    assert_eq!(r.status(), 404);
}
