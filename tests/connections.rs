//! The HTTP listener's own limits: how many connections it serves at once,
//! and how long a connection may sit without sending a complete request.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HEALTH: &[u8] = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";

/// Reads until the server closes the connection; returns what it sent.
async fn read_to_close(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    match tokio::time::timeout(WAIT, s.read_to_end(&mut buf)).await {
        Ok(_) => String::from_utf8_lossy(&buf).into_owned(),
        Err(_) => panic!("the server kept the connection open"),
    }
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_until_one_closes() {
    let server = Server::builder()
        .args(["--max-connections", "2"])
        .start()
        .await;
    let first = TcpStream::connect(server.addr).await.unwrap();
    let mut second = TcpStream::connect(server.addr).await.unwrap();
    // The second is served: both are in.
    second
        .write_all(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    second.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");

    let addr = server.addr;
    let third = tokio::spawn(async move {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(HEALTH).await.unwrap();
        read_to_close(&mut s).await
    });
    // Not served while two are open: the kernel holds it in the listening
    // socket's backlog, unaccepted.
    eventually("the third connection to wait in the backlog", || async {
        (accept_backlog(server.addr.port()) == 1).then_some(())
    })
    .await;
    assert!(!third.is_finished(), "a third connection was served");
    drop(first);
    let answer = tokio::time::timeout(WAIT, third)
        .await
        .expect("served once a connection closed")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn idle_and_slowly_sent_connections_are_closed() {
    let server = Server::builder()
        .args(["--connection-idle-timeout", "1s"])
        .start()
        .await;
    let start = Instant::now();
    // Nothing sent at all.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    // Half a request head, never finished.
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    // One request answered, then nothing more on a kept-alive connection.
    let mut kept = TcpStream::connect(server.addr).await.unwrap();
    kept.write_all(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();

    assert_eq!(read_to_close(&mut silent).await, "");
    // Closed without an answer, the head never finished.
    assert_eq!(read_to_close(&mut slow).await, "");
    let kept_answer = read_to_close(&mut kept).await;
    assert!(kept_answer.starts_with("HTTP/1.1 200"), "{kept_answer}");
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "closed by the timeout, not at once"
    );

    // The server still serves new connections.
    let mut fresh = TcpStream::connect(server.addr).await.unwrap();
    fresh.write_all(HEALTH).await.unwrap();
    assert!(read_to_close(&mut fresh).await.starts_with("HTTP/1.1 200"));
}

#[test]
fn a_zero_connection_limit_is_refused_at_start_up() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_claude-studio"))
        .args(["--listen", "127.0.0.1:0", "--max-connections", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--max-connections"), "{err}");
}

/// Reads a server child's first line from its piped stdout: the one that
/// says where it listens.
fn listening_line(child: &mut std::process::Child) -> String {
    use std::io::{BufRead, BufReader};
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("claude-studio listening on"), "{line}");
    line
}

/// A soft open-file limit of 256 (common defaults are 1024) would cap the
/// server far below `--max-connections`: it raises the limit to the hard one.
#[test]
fn the_open_file_limit_is_raised_to_the_hard_limit() {
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -Sn 256 && exec {} --listen 127.0.0.1:0 --instance {}",
            env!("CARGO_BIN_EXE_claude-studio"),
            unique("nofile")
        ))
        // On the real engine: no warm pool to leave behind when killed.
        .env("STUDIO_WARM_POOL", "0")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    listening_line(&mut child);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id())).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let row = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let nums: Vec<&str> = row.split_whitespace().skip(3).take(2).collect();
    assert_eq!(nums[0], nums[1], "soft limit raised to the hard one: {row}");
    assert_ne!(nums[0], "256", "{row}");
}

/// A body announced too large is refused before it is read; one that stops
/// arriving fails after the idle timeout instead of holding the connection;
/// a chunked one that grows past the limit is refused too.
#[tokio::test]
async fn request_bodies_too_large_or_stalled_are_refused() {
    let server = Server::builder()
        .args(["--connection-idle-timeout", "1s"])
        .start()
        .await;
    let send = |request: String| {
        let addr = server.addr;
        async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(request.as_bytes()).await.unwrap();
            // The body is never finished: the answer must come anyway.
            read_to_close(&mut s).await
        }
    };
    let head = |extra: &str| {
        format!("POST /api/containers HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{extra}\r\n")
    };

    // Refused on its announced length: a server that waited for the body
    // would answer the idle timeout's 400 instead.
    let answer = send(head("Content-Length: 99999999999\r\n")).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("MessageTooLarge"), "{answer}");

    let started = Instant::now();
    let answer = send(head("Content-Length: 1000\r\n") + "{").await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("no request body data"), "{answer}");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "after the idle timeout"
    );

    let chunk = "x".repeat(8 * 1024);
    let mut chunked = head("Transfer-Encoding: chunked\r\n");
    for _ in 0..10 {
        chunked.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    let answer = send(chunked).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(instance_containers(&server.instance).is_empty());
}

/// Connections waiting in the backlog of the socket listening on `port`
/// (for a listening socket, /proc/net/tcp's rx_queue is its accept queue).
fn accept_backlog(port: u16) -> u64 {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .find_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local = u16::from_str_radix(f[1].rsplit(':').next()?, 16).ok()?;
            (local == port && f[3] == "0A")
                .then(|| u64::from_str_radix(f[4].rsplit(':').next()?, 16).ok())
                .flatten()
        })
        .unwrap_or(0)
}

/// The kernel's timer state of the server's end of a connection, from
/// /proc/net/tcp ("02" is the keepalive timer).
fn server_side_timer(server_port: u16, client_port: u16) -> Option<String> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let port = |addr: &str| u16::from_str_radix(addr.rsplit(':').next()?, 16).ok();
        (port(f[1]) == Some(server_port) && port(f[2]) == Some(client_port) && f[3] == "01")
            .then(|| f[5].split(':').next().unwrap_or_default().to_string())
    })
}

#[tokio::test]
async fn accepted_connections_probe_for_vanished_peers() {
    let server = Server::start().await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Idle and open: only the keepalive timer runs on the server's side.
    let client_port = s.local_addr().unwrap().port();
    let timer = eventually("the server's socket to idle", || async {
        server_side_timer(server.addr.port(), client_port).filter(|t| t != "01")
    })
    .await;
    assert_eq!(timer, "02", "TCP keepalive is on for accepted connections");
}

/// A parent that stops reading the server's output (closed pipes) must not
/// make it ignore SIGTERM: logging that fails is dropped, not a panic.
#[test]
fn sigterm_works_when_nobody_reads_the_logs_any_more() {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_claude-studio"))
        .args(["--listen", "127.0.0.1:0", "--instance", &unique("t")])
        .args(["--docker-host", "unix:///nonexistent/docker.sock"])
        .env("RUST_LOG", "claude_studio=debug")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let line = listening_line(&mut child);
    // Both pipes closed: every later write fails with EPIPE.
    drop(child.stderr.take());
    let addr = line.trim().rsplit("http://").next().unwrap().to_string();
    // Something to log (a request, an engine that does not answer).
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    std::io::Write::write_all(
        &mut s,
        b"POST /api/containers HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
    )
    .unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut s, &mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    let start = Instant::now();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status:?}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "SIGTERM ignored with closed output pipes"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Logs written to a file or a pipe carry no terminal colour codes.
#[test]
fn logs_are_plain_text_unless_written_to_a_terminal() {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_claude-studio"))
        .args(["--listen", "127.0.0.1:0", "--instance", &unique("t")])
        .args(["--docker-host", "unix:///nonexistent/docker.sock"])
        .env("RUST_LOG", "claude_studio=debug")
        .env_remove("NO_COLOR")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    listening_line(&mut child);
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("Docker engine unreachable"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a piped log: {log:?}"
    );
}

/// A connection from `source` (any 127.0.0.0/8 address is this machine).
async fn connect_from(source: [u8; 4], to: std::net::SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(std::net::SocketAddr::from((source, 0)))
        .unwrap();
    socket.connect(to).await.unwrap()
}

/// One address holding its share of connections (silent ones, here) gets a
/// 429 for more, while another address is served at once.
#[tokio::test]
async fn one_address_cannot_take_every_connection() {
    let server = Server::builder()
        .args(["--max-connections", "8", "--max-connections-per-ip", "4"])
        .start()
        .await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect_from([127, 0, 0, 1], server.addr).await);
    }
    let mut more = connect_from([127, 0, 0, 1], server.addr).await;
    more.write_all(HEALTH).await.unwrap();
    let answer = read_to_close(&mut more).await;
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(answer.contains("RateLimitError"), "{answer}");
    assert!(answer.contains("retry-after"), "{answer}");

    let mut other = connect_from([127, 0, 0, 2], server.addr).await;
    other.write_all(HEALTH).await.unwrap();
    let answer = read_to_close(&mut other).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // A place given back is a place for the same address again.
    drop(held.pop());
    let again = eventually("a freed place", || async {
        let mut s = connect_from([127, 0, 0, 1], server.addr).await;
        s.write_all(HEALTH).await.unwrap();
        let answer = read_to_close(&mut s).await;
        answer.starts_with("HTTP/1.1 200").then_some(answer)
    })
    .await;
    assert!(again.contains("\"status\""), "{again}");
}

/// A head sent a line at a time, never quite finished, is cut at the head
/// deadline however busy the client keeps it.
#[tokio::test]
async fn a_trickled_request_head_is_closed_at_its_deadline() {
    let server = Server::builder()
        .args(["--request-head-timeout", "1s"])
        .start()
        .await;
    let s = TcpStream::connect(server.addr).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let start = Instant::now();
    let trickle = tokio::spawn(async move {
        let _ = wr
            .write_all(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            .await;
        for i in 0..100 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if wr
                .write_all(format!("X-Slow-{i}: 1\r\n").as_bytes())
                .await
                .is_err()
            {
                return i;
            }
        }
        100
    });
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(WAIT, rd.read_to_end(&mut buf)).await;
    let closed_after = start.elapsed();
    assert_eq!(
        String::from_utf8_lossy(&buf),
        "",
        "closed without an answer"
    );
    assert!(
        closed_after >= Duration::from_millis(900),
        "{closed_after:?}"
    );
    // Without a deadline for the whole head the trickle would keep it open
    // for its 20 s.
    assert!(closed_after < Duration::from_secs(10), "{closed_after:?}");
    trickle.abort();
}

/// A body trickled a byte now and then, never idle for long, fails once it
/// falls under the minimum rate instead of holding its connection for good.
#[tokio::test]
async fn a_trickled_request_body_fails_under_the_minimum_rate() {
    let server = Server::builder()
        .args(["--connection-idle-timeout", "1s"])
        .start()
        .await;
    let s = TcpStream::connect(server.addr).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let start = Instant::now();
    let trickle = tokio::spawn(async move {
        let _ = wr
            .write_all(b"POST /api/containers HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n{")
            .await;
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if wr.write_all(b" ").await.is_err() {
                return;
            }
        }
    });
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(WAIT, rd.read_to_end(&mut buf)).await;
    let answer = String::from_utf8_lossy(&buf);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("too slowly"), "{answer}");
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "{:?}",
        start.elapsed()
    );
    trickle.abort();
    assert!(instance_containers(&server.instance).is_empty());
}
