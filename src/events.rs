//! A session's event log: what happened in it that a client may have missed
//! (console messages, ports opening and closing, command and terminal exits,
//! lifecycle changes), kept bounded, each event numbered with an increasing
//! `seq`.
//!
//! An event is stored as the JSON text of its WebSocket message with `seq`
//! added after `type`, so a replay (`attach` with `since`, or `GET .../events`)
//! is byte for byte what a connected client got live.
//!
//! Numbers keep increasing across a server restart: a log starts at its
//! creation time in milliseconds times 1000 and counts up by one, so an
//! agent holding a `seq` from before a restart never takes later events for
//! ones it has seen (that would need a million events a second).

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::watch;

/// Events kept per session at most.
pub const MAX_EVENTS: usize = 1000;
/// Bytes of events kept per session at most.
pub const MAX_BYTES: usize = 1024 * 1024;

pub struct EventLog {
    events: VecDeque<(u64, Arc<str>)>,
    bytes: usize,
    /// The `seq` of the log's first event ever.
    first: u64,
    /// The `seq` the next event gets.
    next: u64,
    /// The latest `seq` given, for long-polls.
    latest: watch::Sender<u64>,
}

/// What a read of the log found.
#[derive(Debug, Default)]
pub struct Since {
    /// The events after the asked `seq`, oldest first.
    pub events: Vec<Arc<str>>,
    /// The `seq` to ask for next time: the last one returned, or the asked
    /// one when there was nothing new.
    pub next: u64,
    /// Some events after the asked `seq` were dropped from the bounded log
    /// before being read.
    pub missed: bool,
}

impl EventLog {
    pub fn new(now_millis: u64) -> EventLog {
        let first = now_millis.saturating_mul(1000).max(1);
        EventLog {
            events: VecDeque::new(),
            bytes: 0,
            first,
            next: first,
            latest: watch::channel(first - 1).0,
        }
    }

    /// Records one message (the JSON text of a server message, an object
    /// whose first member is `type`); returns its text with `seq` added.
    pub fn record(&mut self, message: &str) -> Arc<str> {
        let seq = self.next;
        self.next += 1;
        let text: Arc<str> = with_seq(message, seq).into();
        self.bytes += text.len();
        self.events.push_back((seq, Arc::clone(&text)));
        while self.events.len() > MAX_EVENTS || (self.bytes > MAX_BYTES && self.events.len() > 1) {
            if let Some((_, old)) = self.events.pop_front() {
                self.bytes -= old.len();
            }
        }
        self.latest.send_replace(seq);
        text
    }

    /// The events after `since` (all of them for 0).
    pub fn since(&self, since: u64) -> Since {
        let first_kept = self.events.front().map_or(self.next, |(s, _)| *s);
        let events: Vec<Arc<str>> = self
            .events
            .iter()
            .filter(|(s, _)| *s > since)
            .map(|(_, t)| Arc::clone(t))
            .collect();
        let next = self
            .events
            .back()
            .map(|(s, _)| *s)
            .filter(|last| *last > since)
            .unwrap_or(since);
        Since {
            events,
            next,
            missed: since.saturating_add(1).max(self.first) < first_kept,
        }
    }

    /// Watches the latest `seq`, to wait for events.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.latest.subscribe()
    }
}

/// `{"type":"x",...}` with `"seq":N` after the type.
fn with_seq(message: &str, seq: u64) -> String {
    debug_assert!(message.starts_with("{\"type\":\""));
    // The type's value is one of our own names (no comma, no quote): the
    // first comma, if any, ends it.
    let at = message.find(',').unwrap_or(message.len() - 1);
    let mut out = String::with_capacity(message.len() + 24);
    out.push_str(&message[..at]);
    out.push_str(",\"seq\":");
    out.push_str(&seq.to_string());
    out.push_str(&message[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_goes_after_the_type() {
        assert_eq!(
            with_seq(r#"{"type":"exit","sessionId":"s","code":0}"#, 7),
            r#"{"type":"exit","seq":7,"sessionId":"s","code":0}"#
        );
        assert_eq!(
            with_seq(r#"{"type":"pong"}"#, 1),
            r#"{"type":"pong","seq":1}"#
        );
        let v: serde_json::Value =
            serde_json::from_str(&with_seq(r#"{"type":"a","b":{"c":","}}"#, 3)).unwrap();
        assert_eq!(v["seq"], 3);
        assert_eq!(v["b"]["c"], ",");
    }

    #[test]
    fn reads_after_a_seq_and_says_what_was_missed() {
        let mut log = EventLog::new(5);
        let first = 5000;
        for i in 0..3 {
            log.record(&format!(r#"{{"type":"t","i":{i}}}"#));
        }
        let all = log.since(0);
        assert_eq!(all.events.len(), 3);
        assert_eq!(all.next, first + 2);
        assert!(!all.missed, "nothing was dropped");
        let later = log.since(first);
        assert_eq!(later.events.len(), 2);
        assert!(later.events[0].contains(r#""i":1"#));
        let none = log.since(first + 2);
        assert!(none.events.is_empty());
        assert_eq!(none.next, first + 2);
    }

    #[test]
    fn the_log_is_bounded_by_count_and_bytes() {
        let mut log = EventLog::new(1);
        for i in 0..(MAX_EVENTS + 10) {
            log.record(&format!(r#"{{"type":"t","i":{i}}}"#));
        }
        let all = log.since(0);
        assert_eq!(all.events.len(), MAX_EVENTS);
        assert!(all.missed);
        assert!(all.events[0].contains(r#""i":10}"#));
        let big = format!(r#"{{"type":"t","x":"{}"}}"#, "a".repeat(300 * 1024));
        for _ in 0..5 {
            log.record(&big);
        }
        assert!(log.bytes <= MAX_BYTES);
        assert_eq!(log.since(0).events.len(), 3);
    }

    #[test]
    fn a_restart_keeps_numbers_increasing() {
        let mut before = EventLog::new(1_000);
        for _ in 0..500 {
            before.record(r#"{"type":"t"}"#);
        }
        let last = before.since(0).next;
        let mut after = EventLog::new(2_000);
        let text = after.record(r#"{"type":"t"}"#);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(v["seq"].as_u64().unwrap() > last);
    }
}
