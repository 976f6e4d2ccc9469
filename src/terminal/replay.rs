//! The session's recent output, replayed to a client that attaches.

/// Keeps at least the last `cap` bytes of text (trimmed only at character
/// boundaries), and at most a quarter more, so trimming is amortised.
#[derive(Debug)]
pub struct Replay {
    text: String,
    cap: usize,
    /// Bytes pushed since the start: a version of the tail.
    pushed: u64,
}

impl Replay {
    pub fn new(cap: usize) -> Self {
        Replay {
            text: String::new(),
            cap,
            pushed: 0,
        }
    }

    pub fn push(&mut self, s: &str) {
        self.pushed += s.len() as u64;
        self.text.push_str(s);
        if self.text.len() > self.cap + self.cap / 4 {
            let mut cut = self.text.len() - self.cap;
            while !self.text.is_char_boundary(cut) {
                cut += 1;
            }
            self.text.drain(..cut);
        }
    }

    /// How much has been pushed in all: changes whenever the tail does.
    pub fn version(&self) -> u64 {
        self.pushed
    }

    /// The last `cap` bytes (or a little less, to start on a character).
    pub fn snapshot(&self) -> &str {
        let mut start = self.text.len().saturating_sub(self.cap);
        while !self.text.is_char_boundary(start) {
            start += 1;
        }
        &self.text[start..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_tail_on_character_boundaries() {
        let mut r = Replay::new(10);
        for _ in 0..20 {
            r.push("é€🎉");
        }
        let s = r.snapshot();
        assert!(s.len() <= 10 && s.len() >= 7, "{}", s.len());
        assert!(s.ends_with("🎉"));
        assert!(r.text.len() <= 13);
    }

    #[test]
    fn short_history_is_kept_whole() {
        let mut r = Replay::new(64 * 1024);
        r.push("$ ls\r\n");
        r.push("a b\r\n");
        assert_eq!(r.snapshot(), "$ ls\r\na b\r\n");
    }
}
