//! Crash consistency: the server is killed with SIGKILL at random moments
//! while creates, deletes, preview configuration and attaches are in
//! flight, and restarted on the same instance and state each time. After
//! each restart and one sweep, what clients were told must hold:
//!
//! - every session a client was told it created (and did not see removed)
//!   exists for its owner, is invisible to the other owner, and runs a
//!   command;
//! - a preview port a client was told it set is the session's port, unless
//!   a later or concurrent setting (answered or cut off) may have replaced
//!   it: the port read back is one a register written by these clients may
//!   hold;
//! - every container of the instance belongs to a session: no orphans.
//!
//! Then, optionally, the Docker engine itself is restarted under load a
//! few times: sessions come back on their next use (attach and type).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{below, rand_u32, Run, Studio, Term};

const TOKENS: [&str; 2] = ["rel-crash-owner-a-7f3e9c1d", "rel-crash-owner-b-2b8a4e6f"];
/// Sessions kept alive at most; creates and deletes balance around it.
const LIVE: usize = 12;

#[derive(Clone, Debug)]
struct Known {
    owner: usize,
    /// The preview port the last check found.
    port: Option<u16>,
    /// Preview ports set since then (from several clients, possibly at
    /// once, some cut off by the kill).
    writes: Vec<Write>,
    /// A delete was sent and got no answer: the session may or may not exist.
    maybe_removed: bool,
}

#[derive(Clone, Debug)]
struct Write {
    port: u16,
    sent: Instant,
    /// When the 200 arrived; `None`: no answer (the kill came first).
    answered: Option<Instant>,
}

impl Known {
    /// The ports the session may rightly have now, as a register written by
    /// clients at once: a write is possible unless a write answered later
    /// was sent after it was answered; the port from before the writes is
    /// possible unless some write was answered.
    fn possible_ports(&self) -> Vec<Option<u16>> {
        let mut ok = Vec::new();
        if self.writes.iter().all(|w| w.answered.is_none()) {
            ok.push(self.port);
        }
        for w in &self.writes {
            let superseded = w.answered.is_some_and(|done| {
                self.writes
                    .iter()
                    .any(|o| o.answered.is_some() && o.sent > done)
            });
            if !superseded {
                ok.push(Some(w.port));
            }
        }
        ok
    }
}

#[derive(Default)]
struct Tally {
    creates_told: u64,
    creates_unanswered: u64,
    deletes_told: u64,
    deletes_unanswered: u64,
    ports_told: u64,
    ports_unanswered: u64,
    attaches: u64,
    /// Answers that were neither success nor an expected refusal.
    unexpected: Vec<String>,
}

struct Model {
    known: Mutex<HashMap<String, Known>>,
    /// Sessions a delete is in flight for: another client's delete of one
    /// of these may rightly get a 404 first.
    deleting: Mutex<std::collections::HashSet<String>>,
    tally: Mutex<Tally>,
}

impl Model {
    fn pick(&self) -> Option<(String, Known)> {
        let k = self.known.lock().unwrap();
        let live: Vec<_> = k.iter().filter(|(_, v)| !v.maybe_removed).collect();
        if live.is_empty() {
            return None;
        }
        let (id, v) = live[below(live.len())];
        Some((id.clone(), v.clone()))
    }

    fn unexpected(&self, what: String) {
        eprintln!("crash: unexpected: {what}");
        self.tally.lock().unwrap().unexpected.push(what);
    }
}

/// One client doing random operations until the server goes away.
async fn client(studio: Arc<Studio>, model: Arc<Model>) {
    loop {
        let op = below(10);
        let live = model.known.lock().unwrap().len();
        if op < 3 && live < LIVE {
            let owner = below(2);
            match studio
                .call(
                    Method::POST,
                    "/api/containers",
                    Some(TOKENS[owner]),
                    Some(json!({})),
                )
                .await
            {
                Ok((200, v)) => {
                    let sid = v["sessionId"].as_str().unwrap_or_default().to_string();
                    model.known.lock().unwrap().insert(
                        sid,
                        Known {
                            owner,
                            port: None,
                            writes: Vec::new(),
                            maybe_removed: false,
                        },
                    );
                    model.tally.lock().unwrap().creates_told += 1;
                }
                // The engine not answered yet after a restart: retryable.
                Ok((503, _)) => {}
                Ok((s, v)) => model.unexpected(format!("create: {s} {v}")),
                Err(_) => {
                    model.tally.lock().unwrap().creates_unanswered += 1;
                    return;
                }
            }
        } else if op < 5 {
            let Some((sid, k)) = model.pick() else {
                continue;
            };
            let racing = !model.deleting.lock().unwrap().insert(sid.clone());
            let answer = studio
                .call(
                    Method::DELETE,
                    &format!("/api/containers/{sid}"),
                    Some(TOKENS[k.owner]),
                    None,
                )
                .await;
            if !racing {
                model.deleting.lock().unwrap().remove(&sid);
            }
            match answer {
                Ok((200, _)) => {
                    model.known.lock().unwrap().remove(&sid);
                    model.tally.lock().unwrap().deletes_told += 1;
                }
                // Another client removed it first.
                Ok((404, _)) if racing || !model.known.lock().unwrap().contains_key(&sid) => {}
                Ok((503, _)) => {}
                Ok((s, v)) => model.unexpected(format!("delete {sid}: {s} {v}")),
                Err(_) => {
                    if let Some(k) = model.known.lock().unwrap().get_mut(&sid) {
                        k.maybe_removed = true;
                    }
                    model.tally.lock().unwrap().deletes_unanswered += 1;
                    return;
                }
            }
        } else if op < 8 {
            let Some((sid, k)) = model.pick() else {
                continue;
            };
            let port = 3000 + (rand_u32() % 6000) as u16;
            let sent = Instant::now();
            let answer = studio
                .call(
                    Method::POST,
                    "/api/preview/configure",
                    Some(TOKENS[k.owner]),
                    Some(json!({"sessionId": sid, "port": port})),
                )
                .await;
            let answered = Instant::now();
            match answer {
                Ok((200, _)) => {
                    if let Some(k) = model.known.lock().unwrap().get_mut(&sid) {
                        k.writes.push(Write {
                            port,
                            sent,
                            answered: Some(answered),
                        });
                    }
                    model.tally.lock().unwrap().ports_told += 1;
                }
                Ok((404 | 503, _)) => {}
                Ok((s, v)) => model.unexpected(format!("configure {sid}: {s} {v}")),
                Err(_) => {
                    if let Some(k) = model.known.lock().unwrap().get_mut(&sid) {
                        k.writes.push(Write {
                            port,
                            sent,
                            answered: None,
                        });
                    }
                    model.tally.lock().unwrap().ports_unanswered += 1;
                    return;
                }
            }
        } else {
            let Some((sid, k)) = model.pick() else {
                continue;
            };
            // Attach, type a line, leave (or be cut off by the kill).
            match Term::attach(studio.addr, Some(TOKENS[k.owner]), &sid).await {
                Ok(mut t) => {
                    let _ = t.run("", Duration::from_secs(5)).await;
                    model.tally.lock().unwrap().attaches += 1;
                    t.drop_abruptly();
                }
                Err(_) => return,
            }
        }
    }
}

/// Retries a call while the server answers 503 (sessions not restored yet).
async fn settled(
    studio: &Studio,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> Result<(u16, Value)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = studio
            .call(method.clone(), path, Some(token), body.clone())
            .await?;
        if r.0 != 503 || Instant::now() > deadline {
            return Ok(r);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Checks what clients were told against the restarted server; returns the
/// violations found.
async fn verify(run: &Run, studio: &Studio, model: &Model) -> Result<Vec<String>> {
    let mut bad = Vec::new();
    let known: Vec<(String, Known)> = model
        .known
        .lock()
        .unwrap()
        .iter()
        .map(|(a, b)| (a.clone(), b.clone()))
        .collect();
    for (sid, k) in known {
        let path = format!("/api/containers/{sid}");
        let (status, info) = settled(studio, Method::GET, &path, TOKENS[k.owner], None).await?;
        if k.maybe_removed {
            match status {
                404 => {
                    model.known.lock().unwrap().remove(&sid);
                    continue;
                }
                200 => {
                    if let Some(k) = model.known.lock().unwrap().get_mut(&sid) {
                        k.maybe_removed = false;
                    }
                }
                s => {
                    bad.push(format!("{sid} (delete unanswered): GET {s} {info}"));
                    continue;
                }
            }
        } else if status != 200 {
            bad.push(format!("{sid}: told created, GET answers {status} {info}"));
            model.known.lock().unwrap().remove(&sid);
            continue;
        }
        let other = TOKENS[1 - k.owner];
        let (s, _) = studio.call(Method::GET, &path, Some(other), None).await?;
        if s != 404 {
            bad.push(format!("{sid}: the other owner gets {s}, not 404"));
        }
        let port = info["previewPort"].as_u64().map(|p| p as u16);
        let possible = k.possible_ports();
        if !possible.contains(&port) {
            bad.push(format!(
                "{sid}: preview port {port:?}, possible {possible:?} ({:?})",
                k.writes
            ));
        }
        if let Some(m) = model.known.lock().unwrap().get_mut(&sid) {
            m.port = port;
            m.writes.clear();
        }
        let (s, r) = settled(
            studio,
            Method::POST,
            &format!("/api/containers/{sid}/exec"),
            TOKENS[k.owner],
            Some(json!({"cmd": ["echo", "ok"], "timeout": 20})),
        )
        .await?;
        if s != 200 || r["exitCode"] != 0 || r["stdout"] != "ok\n" {
            bad.push(format!("{sid}: a command answers {s} {r}"));
        }
    }
    // After one sweep every container of the instance is a session's.
    let before = studio
        .metric(Some(TOKENS[0]), "studio_sweeps_total")
        .await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while studio
        .metric(Some(TOKENS[0]), "studio_sweeps_total")
        .await?
        <= before
    {
        if Instant::now() > deadline {
            bail!("no sweep within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut sessions: HashMap<String, String> = HashMap::new();
    for t in TOKENS {
        let (_, list) = settled(studio, Method::GET, "/api/containers", t, None).await?;
        for s in list.as_array().cloned().unwrap_or_default() {
            sessions.insert(
                s["containerId"].as_str().unwrap_or_default().into(),
                s["sessionId"].as_str().unwrap_or_default().into(),
            );
        }
    }
    for c in run.containers() {
        if !sessions
            .keys()
            .any(|k| c.starts_with(k.as_str()) || k.starts_with(&c))
        {
            bad.push(format!("container {c} belongs to no session after a sweep"));
        }
    }
    // Sessions the server has that no client was told of (a create cut
    // short after its record was written) are fine, and removed here to
    // keep the run bounded.
    let told: Vec<String> = model.known.lock().unwrap().keys().cloned().collect();
    for (_, sid) in sessions {
        if !told.contains(&sid) {
            for t in TOKENS {
                let _ = studio
                    .call(
                        Method::DELETE,
                        &format!("/api/containers/{sid}"),
                        Some(t),
                        None,
                    )
                    .await;
            }
        }
    }
    Ok(bad)
}

pub async fn run(kills: usize, engine_restarts: usize) -> Result<()> {
    let run = Run::new("crash");
    let flags = [
        "--api-token",
        TOKENS[0],
        "--api-token",
        TOKENS[1],
        "--cleanup-interval",
        "1s",
        "--rate-limit-auth",
        "off",
    ];
    let model = Arc::new(Model {
        known: Mutex::new(HashMap::new()),
        deleting: Mutex::new(Default::default()),
        tally: Mutex::new(Tally::default()),
    });
    let mut violations = Vec::new();
    let mut restart_times = Vec::new();
    let t0 = Instant::now();
    for i in 0..kills {
        let t = Instant::now();
        let studio = Arc::new(run.start(&flags).await?);
        restart_times.push(t.elapsed());
        for v in verify(&run, &studio, &model).await? {
            eprintln!("crash: after kill {i}: {v}");
            violations.push(v);
        }
        let clients: Vec<_> = (0..4)
            .map(|_| tokio::spawn(client(Arc::clone(&studio), Arc::clone(&model))))
            .collect();
        // Kill at a random moment 0.2 to 3 s into the load.
        tokio::time::sleep(Duration::from_millis(200 + (rand_u32() % 2800) as u64)).await;
        let pid = studio.pid;
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        for c in clients {
            let _ = tokio::time::timeout(Duration::from_secs(70), c).await;
        }
        if let Ok(s) = Arc::try_unwrap(studio) {
            s.kill().await;
        }
        if i % 10 == 9 {
            eprintln!(
                "crash: {} kills in {:.0} s, {} violations, {} sessions known",
                i + 1,
                t0.elapsed().as_secs_f64(),
                violations.len(),
                model.known.lock().unwrap().len()
            );
        }
    }
    let studio = run.start(&flags).await?;
    violations.extend(verify(&run, &studio, &model).await?);

    // The engine restarted under load: sessions come back on their next use.
    let mut engine_results = Vec::new();
    for r in 0..engine_restarts {
        while model.known.lock().unwrap().len() < 6 {
            let owner = below(2);
            let (s, v) = settled(
                &studio,
                Method::POST,
                "/api/containers",
                TOKENS[owner],
                Some(json!({})),
            )
            .await?;
            if s != 200 {
                bail!("create before engine restart: {s} {v}");
            }
            model.known.lock().unwrap().insert(
                v["sessionId"].as_str().unwrap_or_default().into(),
                Known {
                    owner,
                    port: None,
                    writes: Vec::new(),
                    maybe_removed: false,
                },
            );
        }
        let studio = Arc::new(studio_ref(&studio));
        let clients: Vec<_> = (0..4)
            .map(|_| tokio::spawn(client_on(studio.clone(), Arc::clone(&model))))
            .collect();
        tokio::time::sleep(Duration::from_millis(500 + (rand_u32() % 1500) as u64)).await;
        let t = Instant::now();
        restart_engine()?;
        for c in clients {
            c.abort();
        }
        // Every session answers an attach and a typed line again.
        let known: Vec<(String, Known)> = model
            .known
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, k)| !k.maybe_removed)
            .map(|(a, b)| (a.clone(), b.clone()))
            .collect();
        let (mut back, mut total) = (0, 0);
        for (sid, k) in known {
            total += 1;
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let ok = match Term::attach(studio.addr, Some(TOKENS[k.owner]), &sid).await {
                    Ok(mut term) => term.run("", Duration::from_secs(10)).await.is_ok(),
                    Err(_) => false,
                };
                if ok {
                    back += 1;
                    break;
                }
                if Instant::now() > deadline {
                    violations.push(format!(
                        "engine restart {r}: {sid} did not come back in 60 s"
                    ));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        engine_results.push((back, total, t.elapsed()));
    }
    let final_bad = verify(&run, &studio, &model).await?;
    violations.extend(final_bad);

    // Remove everything; nothing may be left.
    let known: Vec<(String, Known)> = model.known.lock().unwrap().drain().collect();
    for (sid, k) in known {
        let _ = studio
            .call(
                Method::DELETE,
                &format!("/api/containers/{sid}"),
                Some(TOKENS[k.owner]),
                None,
            )
            .await;
    }
    studio.stop().await;
    let left = run.containers().len();

    let t = model.tally.lock().unwrap();
    println!("\n## Crash consistency: {kills} SIGKILLs under load\n");
    println!("| figure | value |");
    println!("|---|---:|");
    println!("| kills (SIGKILL at a random moment, 0.2–3 s into the load) | {kills} |");
    println!(
        "| creates answered / cut off by the kill | {} / {} |",
        t.creates_told, t.creates_unanswered
    );
    println!(
        "| deletes answered / cut off | {} / {} |",
        t.deletes_told, t.deletes_unanswered
    );
    println!(
        "| preview ports set, answered / cut off | {} / {} |",
        t.ports_told, t.ports_unanswered
    );
    println!("| attaches that typed a line | {} |", t.attaches);
    let mut rt = restart_times.clone();
    println!(
        "| restart to listening: p50 / max | {} / {} |",
        crate::support::ms(crate::support::pct(&mut rt, 50.0)),
        crate::support::ms(*restart_times.iter().max().unwrap_or(&Duration::ZERO))
    );
    println!("| told-about sessions missing, wrong owner, port lost or not working; orphan containers after a sweep | {} |", violations.len());
    println!("| unexpected answers | {} |", t.unexpected.len());
    for (r, (back, total, d)) in engine_results.iter().enumerate() {
        println!(
            "| engine restart {}: sessions back on their next use | {back} of {total} ({:.0} s) |",
            r + 1,
            d.as_secs_f64()
        );
    }
    println!("| containers left at the end | {left} |");
    for v in violations.iter().take(20) {
        println!("\nviolation: {v}");
    }
    for u in t.unexpected.iter().take(20) {
        println!("\nunexpected: {u}");
    }
    Ok(())
}

/// A second handle on a running server (same address), for the load
/// clients of the engine-restart rounds.
fn studio_ref(s: &Studio) -> StudioRef {
    StudioRef {
        addr: s.addr,
        http: s.http.clone(),
    }
}

#[derive(Clone)]
struct StudioRef {
    addr: std::net::SocketAddr,
    http: reqwest::Client,
}

/// Load during an engine restart: attaches and commands that may fail.
async fn client_on(s: Arc<StudioRef>, model: Arc<Model>) {
    loop {
        let Some((sid, k)) = model.pick() else { return };
        if below(2) == 0 {
            if let Ok(mut t) = Term::attach(s.addr, Some(TOKENS[k.owner]), &sid).await {
                let _ = t.run("", Duration::from_secs(5)).await;
                t.drop_abruptly();
            }
        } else {
            let _ = s
                .http
                .post(format!("http://{}/api/containers/{sid}/exec", s.addr))
                .bearer_auth(TOKENS[k.owner])
                .json(&json!({"cmd": ["true"]}))
                .send()
                .await;
        }
    }
}

/// Stops dockerd (SIGTERM, which stops the containers) and starts it again
/// the way the scripts do.
fn restart_engine() -> Result<()> {
    let pid = std::fs::read_to_string("/var/run/docker.pid")?;
    std::process::Command::new("kill")
        .args(["-TERM", pid.trim()])
        .status()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::path::Path::new(&format!("/proc/{}", pid.trim())).exists() {
        if Instant::now() > deadline {
            bail!("dockerd did not stop");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let ok = std::process::Command::new("scripts/ensure-docker.sh").status()?;
    if !ok.success() {
        bail!("scripts/ensure-docker.sh failed");
    }
    Ok(())
}
