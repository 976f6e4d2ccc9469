//! Turning the TTY's byte stream into text without ever splitting a
//! character: an incomplete sequence at the end of a read is carried into the
//! next one; bytes that can never be valid UTF-8 become U+FFFD.

#[derive(Debug, Default)]
pub struct Utf8Decoder {
    /// At most 3 bytes: the start of a character whose rest has not arrived.
    carry: Vec<u8>,
}

impl Utf8Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn decode(&mut self, input: &[u8]) -> String {
        let joined;
        let mut bytes: &[u8] = if self.carry.is_empty() {
            input
        } else {
            let mut v = std::mem::take(&mut self.carry);
            v.extend_from_slice(input);
            joined = v;
            &joined
        };
        let mut out = String::with_capacity(bytes.len());
        loop {
            match std::str::from_utf8(bytes) {
                Ok(s) => {
                    out.push_str(s);
                    break;
                }
                Err(e) => {
                    let (valid, rest) = bytes.split_at(e.valid_up_to());
                    // SAFETY-free: from_utf8 vouched for this prefix.
                    out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                    match e.error_len() {
                        Some(n) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            bytes = &rest[n..];
                        }
                        None => {
                            self.carry.extend_from_slice(rest);
                            break;
                        }
                    }
                }
            }
        }
        out
    }

    /// Flushes a trailing incomplete sequence at the end of the stream.
    pub fn finish(&mut self) -> String {
        if self.carry.is_empty() {
            String::new()
        } else {
            self.carry.clear();
            char::REPLACEMENT_CHARACTER.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_characters_are_joined() {
        let text = "héllo → 世界 🎉";
        let bytes = text.as_bytes();
        // Every possible split point gives back the same text, never a U+FFFD.
        for cut in 0..=bytes.len() {
            let mut d = Utf8Decoder::new();
            let mut out = d.decode(&bytes[..cut]);
            out.push_str(&d.decode(&bytes[cut..]));
            out.push_str(&d.finish());
            assert_eq!(out, text, "cut at {cut}");
        }
    }

    #[test]
    fn byte_at_a_time() {
        let text = "a🎉b€c";
        let mut d = Utf8Decoder::new();
        let mut out = String::new();
        for b in text.as_bytes() {
            let part = d.decode(std::slice::from_ref(b));
            assert!(!part.contains('\u{FFFD}'));
            out.push_str(&part);
        }
        assert_eq!(out, text);
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        let mut d = Utf8Decoder::new();
        assert_eq!(d.decode(b"a\xffb\xc0\x80c"), "a\u{FFFD}b\u{FFFD}\u{FFFD}c");
        assert_eq!(d.decode(b"\xe2\x82"), "");
        assert_eq!(d.finish(), "\u{FFFD}");
        assert_eq!(d.decode(b"ok"), "ok");
    }
}
