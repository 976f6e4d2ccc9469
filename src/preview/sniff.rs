//! Pages that do not say what they are: a response without a
//! `Content-Type` is shown by browsers as whatever its first bytes look
//! like (the WHATWG MIME sniffing rules), so the preview looks the same way
//! to decide whether it is HTML that gets the console script. And pages in
//! an encoding the rewriter cannot read (UTF-16) pass through untouched.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

/// The tags whose start makes a browser sniff a page as HTML (WHATWG MIME
/// sniffing, "identifying a resource with an unknown MIME type").
const HTML_STARTS: [&[u8]; 17] = [
    b"<!DOCTYPE HTML",
    b"<HTML",
    b"<HEAD",
    b"<SCRIPT",
    b"<IFRAME",
    b"<H1",
    b"<DIV",
    b"<FONT",
    b"<TABLE",
    b"<A",
    b"<STYLE",
    b"<TITLE",
    b"<B",
    b"<BODY",
    b"<BR",
    b"<P",
    b"<!--",
];

/// Whether a browser would take a body starting with `head` for HTML.
pub fn looks_like_html(head: &[u8]) -> bool {
    let start = head
        .iter()
        .position(|b| !matches!(b, b'\t' | b'\n' | b'\x0c' | b'\r' | b' '))
        .unwrap_or(head.len());
    let rest = &head[start..];
    HTML_STARTS.iter().any(|tag| {
        rest.len() > tag.len()
            && rest[..tag.len()].eq_ignore_ascii_case(tag)
            // The tag ends there (`<a>`, `<b `), or the comment opens.
            && (*tag == b"<!--" || matches!(rest[tag.len()], b' ' | b'>'))
    })
}

/// Whether a page in this charset, or starting with these bytes, is in an
/// encoding whose bytes are not ASCII's (UTF-16): the rewriter cannot read
/// it, and a UTF-8 script would be garbage in it.
pub fn not_ascii_compatible(content_type: Option<&str>, head: &[u8]) -> bool {
    let declared = content_type.is_some_and(|ct| {
        ct.split(';').skip(1).any(|p| {
            p.split_once('=').is_some_and(|(k, v)| {
                k.trim().eq_ignore_ascii_case("charset")
                    && v.trim()
                        .trim_matches('"')
                        .to_ascii_lowercase()
                        .starts_with("utf-16")
            })
        })
    });
    declared || head.starts_with(&[0xFE, 0xFF]) || head.starts_with(&[0xFF, 0xFE])
}

/// A body whose first bytes have been read (to look at them) and are given
/// back first.
pub struct Peeked<B> {
    first: Option<Bytes>,
    rest: B,
}

impl<B> Peeked<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    /// Reads up to the first data of `body` (or its end): `Err` if the body
    /// failed before any data.
    pub async fn read(mut body: B) -> Result<Peeked<B>, B::Error> {
        let mut first = None;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                if !data.is_empty() {
                    first = Some(data);
                    break;
                }
            }
        }
        Ok(Peeked { first, rest: body })
    }

    /// `body`, not looked at.
    pub fn unread(body: B) -> Peeked<B> {
        Peeked {
            first: None,
            rest: body,
        }
    }

    /// The first bytes, empty when the body is.
    pub fn head(&self) -> &[u8] {
        self.first.as_deref().unwrap_or_default()
    }
}

impl<B> Body for Peeked<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = self.rest.size_hint();
        if let Some(first) = &self.first {
            let n = first.len() as u64;
            hint.set_lower(hint.lower() + n);
            if let Some(upper) = hint.upper() {
                hint.set_upper(upper + n);
            }
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_recognised_as_a_browser_would() {
        for yes in [
            "<!doctype html><p>",
            "  \n<HTML>",
            "<h1>hi</h1>",
            "<a href=x>",
            "<b>bold</b>",
            "<!-- c -->",
            "<script src=x></script>",
            "<body >",
        ] {
            assert!(looks_like_html(yes.as_bytes()), "{yes}");
        }
        for no in [
            "{\"a\":1}",
            "plain text",
            "<abbr>",
            "<h1",
            "<?xml version='1.0'?>",
            "",
            "<bx>",
        ] {
            assert!(!looks_like_html(no.as_bytes()), "{no}");
        }
    }

    #[test]
    fn utf16_is_recognised_by_charset_or_byte_order_mark() {
        assert!(not_ascii_compatible(
            Some("text/html; charset=UTF-16"),
            b"<"
        ));
        assert!(not_ascii_compatible(
            Some("text/html; charset=\"utf-16le\""),
            b"<"
        ));
        assert!(not_ascii_compatible(
            Some("text/html"),
            &[0xFF, 0xFE, b'<', 0]
        ));
        assert!(not_ascii_compatible(None, &[0xFE, 0xFF, 0, b'<']));
        assert!(!not_ascii_compatible(
            Some("text/html; charset=utf-8"),
            b"<html>"
        ));
        assert!(!not_ascii_compatible(
            Some("text/html"),
            &[0xEF, 0xBB, 0xBF, b'<']
        ));
    }

    #[tokio::test]
    async fn a_peeked_body_gives_its_first_bytes_back() {
        let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = ["", "<h1>", "rest"]
            .iter()
            .map(|c| Ok(Frame::data(Bytes::from_static(c.as_bytes()))))
            .collect();
        let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
        let peeked = Peeked::read(body).await.unwrap();
        assert_eq!(peeked.head(), b"<h1>");
        let all = peeked.collect().await.unwrap().to_bytes();
        assert_eq!(&all[..], b"<h1>rest");
    }
}
