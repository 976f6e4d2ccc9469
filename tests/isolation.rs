//! Network isolation as the contract means it, tried from inside a session
//! with addresses of this machine only: the host (through the bridge's
//! gateway and its other addresses) and a host the test makes itself in a
//! network namespace with a private address. Link-local and the internet
//! are never sent to: their rules are checked installed instead.

mod common;

use std::net::Ipv4Addr;
use std::process::Command;

use common::*;
use serde_json::json;

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("ip (iproute2)");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A host of the test's own: a network namespace joined to this machine by
/// a veth pair, `10.213.N.2` inside, `10.213.N.1` on the host side, with
/// busybox httpd on ports 8000 and 8001. Removed when dropped.
struct PrivateHost {
    ns: String,
    veth: String,
    addr: Ipv4Addr,
    _dir: std::path::PathBuf,
}

impl PrivateHost {
    fn start() -> PrivateHost {
        let n = (std::process::id() % 200 + 20) as u8;
        let ns = unique("studio-ns");
        let veth = format!("vst{}", std::process::id() % 100_000);
        let peer = format!("{veth}p");
        let addr = Ipv4Addr::new(10, 213, n, 2);
        let dir = std::env::temp_dir().join(unique("studio-ns-www"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("index.html"), "private-host\n").unwrap();
        ip(&["netns", "add", &ns]);
        ip(&["link", "add", &veth, "type", "veth", "peer", "name", &peer]);
        ip(&["link", "set", &peer, "netns", &ns]);
        ip(&["addr", "add", &format!("10.213.{n}.1/30"), "dev", &veth]);
        ip(&["link", "set", &veth, "up"]);
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{addr}/30"),
            "dev",
            &peer,
        ]);
        ip(&["-n", &ns, "link", "set", &peer, "up"]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        ip(&[
            "-n",
            &ns,
            "route",
            "add",
            "default",
            "via",
            &format!("10.213.{n}.1"),
        ]);
        for port in ["8000", "8001"] {
            let status = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &ns,
                    "/bin/busybox",
                    "httpd",
                    "-p",
                    port,
                    "-h",
                ])
                .arg(&dir)
                .status()
                .unwrap();
            assert!(status.success());
        }
        PrivateHost {
            ns,
            veth,
            addr,
            _dir: dir,
        }
    }

    /// Whether this machine itself reaches the private host (it must, or a
    /// refusal from a session would prove nothing).
    fn reachable_from_the_host(&self, port: u16) -> bool {
        http_get(&format!("{}:{port}", self.addr)).is_some_and(|b| b.contains("private-host"))
    }
}

impl Drop for PrivateHost {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "pids", &self.ns])
            .output()
            .map(|o| {
                for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    let _ = Command::new("kill").arg(pid).status();
                }
            });
        let _ = Command::new("ip")
            .args(["link", "del", &self.veth])
            .status();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

fn http_get(addr: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(
        &addr.parse().ok()?,
        std::time::Duration::from_secs(3),
    )
    .ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(3)))
        .ok()?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// This machine's own IPv4 addresses, loopback aside.
fn host_addresses() -> Vec<String> {
    ip(&["-o", "-4", "addr", "show"])
        .lines()
        .filter_map(|l| {
            let addr = l.split_whitespace().skip_while(|w| *w != "inet").nth(1)?;
            let addr = addr.split('/').next()?;
            (!addr.starts_with("127.")).then(|| addr.to_string())
        })
        .collect()
}

/// What a session gets from `addr:port`: the answer, or how it failed.
async fn fetch_from(ws: &mut Ws, sid: &str, addr: &str, port: u16) -> String {
    ws.run(
        sid,
        &format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {addr} {port} 2>&1; echo rc=$?"),
    )
    .await
}

/// The session network's bridge interface, from the engine.
fn bridge_of(cid: &str) -> String {
    let info = docker_inspect("container", cid).unwrap();
    let net = info["HostConfig"]["NetworkMode"]
        .as_str()
        .unwrap()
        .to_string();
    let n = docker_inspect("network", &net).unwrap();
    n["Options"]["com.docker.network.bridge.name"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| format!("br-{}", &n["Id"].as_str().unwrap()[..12]))
}

fn chain(tool: &str, name: &str) -> String {
    let out = Command::new(tool)
        .args(["-w", "-S", name])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Removes a network of the test's own when dropped (after its server,
/// which is declared later and so dropped first).
struct OwnNetwork(String);

impl Drop for OwnNetwork {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["network", "rm", &self.0])
            .output();
    }
}

#[tokio::test]
async fn a_session_reaches_neither_the_host_nor_private_networks() {
    let private = PrivateHost::start();
    assert!(
        private.reachable_from_the_host(8000),
        "the test's private host is up"
    );
    // A server of the host's own, on every address.
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            use std::io::{Read, Write};
            let _ = s.map(|mut s| {
                let mut head = [0u8; 1024];
                let _ = s.read(&mut head);
                let _ = s.write_all(b"HTTP/1.0 200 OK\r\n\r\nthe-host\n");
            });
        }
    });
    assert!(http_get(&format!("127.0.0.1:{port}")).is_some_and(|b| b.contains("the-host")));

    let net = OwnNetwork(unique("studio-iso"));
    let server = Server::builder().args(["--network", &net.0]).start().await;
    let mut ws = server.ws().await;
    let (sid, cid) = ws.create(json!({})).await;
    let info = docker_inspect("container", &cid).unwrap();
    let gateway = info["NetworkSettings"]["Networks"][&net.0]["Gateway"]
        .as_str()
        .unwrap()
        .to_string();
    let mut targets = vec![gateway];
    targets.extend(host_addresses());
    for addr in &targets {
        let out = fetch_from(&mut ws, &sid, addr, port).await;
        assert!(
            !out.contains("the-host"),
            "a session reached the host at {addr}: {out:?}"
        );
        assert!(!out.contains("rc=0"), "{addr}: {out:?}");
    }
    let out = fetch_from(&mut ws, &sid, &private.addr.to_string(), 8000).await;
    assert!(
        !out.contains("private-host"),
        "a session reached 10.213/16: {out:?}"
    );

    // Where no test traffic may go, the rules are checked instead.
    let bridge = bridge_of(&cid);
    let rules = chain("iptables", &format!("STUDIO-F-{bridge}"));
    for range in [
        "169.254.0.0/16",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
    ] {
        assert!(
            rules.contains(&format!("-d {range} -j REJECT")),
            "{range}: {rules}"
        );
    }
    assert!(
        !rules.contains(&format!("STUDIO-F-{bridge} -j REJECT")),
        "the internet stays open: {rules}"
    );
    let input = chain("iptables", &format!("STUDIO-I-{bridge}"));
    assert!(input.contains("-j REJECT"), "{input}");
    drop(server);
}

/// `--egress-allow` opens one exception (a company's package mirror, say),
/// and `--egress deny` closes everything else, the internet included.
#[tokio::test]
async fn egress_exceptions_open_exactly_what_they_name_and_deny_closes_the_rest() {
    let private = PrivateHost::start();
    assert!(private.reachable_from_the_host(8000));
    assert!(private.reachable_from_the_host(8001));
    let net = OwnNetwork(unique("studio-deny"));
    let server = Server::builder()
        .args(["--network", &net.0, "--egress", "deny"])
        .args(["--egress-allow", &format!("{}:8000", private.addr)])
        .start()
        .await;
    let mut ws = server.ws().await;
    let (sid, cid) = ws.create(json!({})).await;
    let addr = private.addr.to_string();
    let out = fetch_from(&mut ws, &sid, &addr, 8000).await;
    assert!(
        out.contains("private-host"),
        "the exception is open: {out:?}"
    );
    let out = fetch_from(&mut ws, &sid, &addr, 8001).await;
    assert!(
        !out.contains("private-host"),
        "only the port named: {out:?}"
    );
    let rules = chain("iptables", &format!("STUDIO-F-{}", bridge_of(&cid)));
    assert!(
        rules.contains(&format!("STUDIO-F-{} -j REJECT", bridge_of(&cid))),
        "{rules}"
    );
    drop(server);
}

/// The preview still reaches the app: it enters the container's namespace.
#[tokio::test]
async fn the_preview_works_inside_the_isolation() {
    let net = OwnNetwork(unique("studio-pv"));
    let server = Server::builder()
        .args(["--network", &net.0, "--egress", "deny"])
        .start()
        .await;
    let mut ws = server.ws().await;
    let (sid, _) = ws.create(json!({})).await;
    ws.input(&sid, "preview-upstream 8080 &\n").await;
    let (status, _) = server
        .post(
            "/api/preview/configure",
            &json!({"sessionId": sid, "port": 8080}).to_string(),
        )
        .await;
    assert_eq!(status, 200);
    let url = server.url(&format!("/preview/{sid}/small"));
    let body = eventually("the preview", || {
        let url = url.clone();
        async move {
            let r = reqwest::get(&url).await.ok()?;
            (r.status() == 200).then_some(r.text().await.ok()?)
        }
    })
    .await;
    assert_eq!(body, "ok\n");
    drop(server);
}
