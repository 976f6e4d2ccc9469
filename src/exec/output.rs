//! A command's output: pieces for streaming (text that never splits a
//! character, or bytes that are not UTF-8), and what is kept of it for
//! whoever asks after the fact, within a cap.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// One piece of output, as it is sent: text, or bytes that are not UTF-8
/// (sent base64, marked `"encoding":"base64"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Binary(Vec<u8>),
}

impl Piece {
    /// The `data` and `encoding` of an `exec_output` message.
    pub fn wire(&self) -> (std::borrow::Cow<'_, str>, Option<&'static str>) {
        match self {
            Piece::Text(t) => (t.as_str().into(), None),
            Piece::Binary(b) => (STANDARD.encode(b).into(), Some("base64")),
        }
    }
}

/// Cuts one stream into pieces: a character split across reads is carried
/// into the next piece; a read holding bytes that can never be UTF-8 goes
/// out whole as binary.
#[derive(Debug, Default)]
pub struct Pieces {
    /// At most 3 bytes: the start of a character whose rest has not come.
    carry: Vec<u8>,
}

impl Pieces {
    pub fn push(&mut self, input: &[u8]) -> Option<Piece> {
        let mut bytes = std::mem::take(&mut self.carry);
        bytes.extend_from_slice(input);
        match std::str::from_utf8(&bytes) {
            Ok(_) => {}
            Err(e) if e.error_len().is_none() => {
                self.carry = bytes.split_off(e.valid_up_to());
            }
            Err(_) => return Some(Piece::Binary(bytes)),
        }
        if bytes.is_empty() {
            return None;
        }
        Some(Piece::Text(
            String::from_utf8(bytes).expect("checked to be UTF-8 above"),
        ))
    }

    /// What is left at the end of the stream: the start of a character
    /// that never finished, as bytes.
    pub fn finish(&mut self) -> Option<Piece> {
        let rest = std::mem::take(&mut self.carry);
        (!rest.is_empty()).then_some(Piece::Binary(rest))
    }
}

/// The output kept of one stream for later readers.
#[derive(Debug, Default)]
pub struct Kept {
    bytes: Vec<u8>,
}

impl Kept {
    pub fn size(&self) -> usize {
        self.bytes.len()
    }

    pub fn extend(&mut self, b: &[u8]) {
        self.bytes.extend_from_slice(b);
    }

    /// The kept output as a JSON string and its encoding: text when it is
    /// UTF-8 (a character cut by the cap is left out), base64 otherwise.
    pub fn render(&self, truncated: bool) -> (String, Option<&'static str>) {
        match std::str::from_utf8(&self.bytes) {
            Ok(s) => (s.to_string(), None),
            Err(e) if truncated && e.error_len().is_none() => (
                String::from_utf8(self.bytes[..e.valid_up_to()].to_vec()).expect("a valid prefix"),
                None,
            ),
            Err(_) => (STANDARD.encode(&self.bytes), Some("base64")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_are_never_split_and_bytes_that_are_not_text_go_as_binary() {
        let mut p = Pieces::default();
        let euro = "€".as_bytes(); // 3 bytes
        assert_eq!(p.push(&[b'a', euro[0]]), Some(Piece::Text("a".into())));
        assert_eq!(p.push(&euro[1..2]), None);
        assert_eq!(p.push(&[euro[2], b'b']), Some(Piece::Text("€b".into())));
        assert_eq!(
            p.push(&[0xff, 0x00, b'c']),
            Some(Piece::Binary(vec![0xff, 0x00, b'c']))
        );
        assert_eq!(p.push(&[0xe2]), None);
        assert_eq!(p.finish(), Some(Piece::Binary(vec![0xe2])));
        assert_eq!(p.finish(), None);
        assert_eq!(
            Piece::Binary(vec![0, 1, 255]).wire(),
            ("AAH/".into(), Some("base64"))
        );
    }

    #[test]
    fn kept_output_renders_as_text_when_it_can() {
        let mut k = Kept::default();
        k.extend("héllo".as_bytes());
        assert_eq!(k.render(false), ("héllo".to_string(), None));
        k.extend(&"€".as_bytes()[..1]);
        assert_eq!(
            k.render(true),
            ("héllo".to_string(), None),
            "the cap cut a character"
        );
        assert_eq!(k.render(false).1, Some("base64"));
        let mut bin = Kept::default();
        bin.extend(&[0xff, 0xfe]);
        assert_eq!(bin.render(false), ("//4=".to_string(), Some("base64")));
    }
}
