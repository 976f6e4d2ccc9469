//! The engine's own clock for each container: `docker events` stamps the end
//! of create, start, exec create and exec start in nanoseconds. Set against
//! the client's send time, it shows where a session start spends its time on
//! the server's path and on the baseline's, without instrumenting the server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bollard::query_parameters::EventsOptions;
use bollard::Docker;
use futures_util::StreamExt;

/// Unix nanoseconds at which the engine finished each step.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timeline {
    pub create: Option<i64>,
    pub start: Option<i64>,
    pub exec_create: Option<i64>,
    pub exec_start: Option<i64>,
}

pub struct Events {
    seen: Arc<Mutex<HashMap<String, Timeline>>>,
    task: tokio::task::JoinHandle<()>,
}

pub fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as i64
}

impl Events {
    pub async fn start(docker: &Docker) -> Events {
        let seen: Arc<Mutex<HashMap<String, Timeline>>> = Arc::default();
        let filters = HashMap::from([("type".to_string(), vec!["container".to_string()])]);
        let mut stream = docker.events(Some(EventsOptions {
            filters: Some(filters),
            ..Default::default()
        }));
        let map = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            while let Some(Ok(ev)) = stream.next().await {
                let (Some(id), Some(action), Some(t)) =
                    (ev.actor.and_then(|a| a.id), ev.action, ev.time_nano)
                else {
                    continue;
                };
                let mut map = map.lock().unwrap();
                let tl = map.entry(id).or_default();
                let slot = match action.split(':').next().unwrap_or_default() {
                    "create" => &mut tl.create,
                    "start" => &mut tl.start,
                    "exec_create" => &mut tl.exec_create,
                    "exec_start" => &mut tl.exec_start,
                    _ => continue,
                };
                slot.get_or_insert(t);
            }
        });
        // The subscription is made when the stream is first polled.
        tokio::time::sleep(Duration::from_millis(200)).await;
        Events { seen, task }
    }

    /// The exec part of a container's timeline, for containers started
    /// before the subscription (the warm pool's).
    pub async fn exec_timeline(&self, id: &str) -> Option<Timeline> {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let tl = self.seen.lock().unwrap().get(id).copied();
            if let Some(tl) = tl.filter(|t| t.exec_start.is_some()) {
                return Some(tl);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The container's timeline once it has started (and, with `exec`, once
    /// its exec has; events arrive a moment after the API answers).
    pub async fn timeline(&self, id: &str, exec: bool) -> Option<Timeline> {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let tl = self.seen.lock().unwrap().get(id).copied();
            if let Some(tl) = tl.filter(|t| {
                t.create.is_some() && t.start.is_some() && (!exec || t.exec_start.is_some())
            }) {
                return Some(tl);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One start, split at the engine's events, each phase from the previous mark.
#[derive(Debug, Clone, Copy, Default)]
pub struct Split {
    /// Send → engine finished create (client + server work + engine create).
    pub to_create: Duration,
    pub create_to_start: Duration,
    /// Engine started the container → the client learns it runs.
    pub start_to_reported: Duration,
    pub reported_to_exec_create: Duration,
    pub exec_create_to_start: Duration,
    pub exec_start_to_output: Duration,
}

impl Split {
    /// `sent`, `reported` and `output` are the client's wall-clock nanos.
    pub fn new(tl: &Timeline, sent: i64, reported: i64, output: i64) -> Option<Split> {
        let (ec, es) = (tl.exec_create?, tl.exec_start?);
        let mut s = Split::container(tl, sent, reported)?;
        s.reported_to_exec_create = nanos(reported, ec);
        s.exec_create_to_start = nanos(ec, es);
        s.exec_start_to_output = nanos(es, output);
        Some(s)
    }

    /// Only the container part, for starts without a shell (`docker run -d`).
    pub fn container(tl: &Timeline, sent: i64, reported: i64) -> Option<Split> {
        let (c, s) = (tl.create?, tl.start?);
        Some(Split {
            to_create: nanos(sent, c),
            create_to_start: nanos(c, s),
            start_to_reported: nanos(s, reported),
            ..Default::default()
        })
    }
}

/// A warm start, split at the client's marks and the engine's exec events.
#[derive(Debug, Clone, Copy, Default)]
pub struct WarmSplit {
    /// Send → `container_created`.
    pub to_reported: Duration,
    /// `container_created` → first output at the client.
    pub reported_to_output: Duration,
    /// Whether the shell's exec was started before the request (by the pool).
    pub shell_prestarted: bool,
    /// Exec started → send, when pre-started; else send → exec started.
    pub shell_offset: Duration,
}

impl WarmSplit {
    /// `sent`, `reported` and `output` are the client's wall-clock nanos.
    pub fn new(tl: &Timeline, sent: i64, reported: i64, output: i64) -> Option<WarmSplit> {
        let es = tl.exec_start?;
        Some(WarmSplit {
            to_reported: nanos(sent, reported),
            reported_to_output: nanos(reported, output),
            shell_prestarted: es <= sent,
            shell_offset: if es <= sent {
                nanos(es, sent)
            } else {
                nanos(sent, es)
            },
        })
    }
}

fn nanos(from: i64, to: i64) -> Duration {
    Duration::from_nanos(to.saturating_sub(from).max(0) as u64)
}
