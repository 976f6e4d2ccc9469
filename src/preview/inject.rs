//! The console-capture script, injected first in `<head>` of every HTML
//! response by a streaming rewriter (lol_html): the page is decoded and
//! rewritten chunk by chunk as it arrives, never buffered whole. A
//! `<meta http-equiv="Content-Security-Policy">` is amended on the way.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use axum::body::Body;
use bytes::Bytes;
use http_body_util::BodyExt;
use lol_html::html_content::ContentType;
use lol_html::send::{Element, ElementContentHandlers, HtmlRewriter, Settings};
use lol_html::{HandlerResult, MemorySettings, Selector};

use super::csp;
use super::decode::Decoder;

const SCRIPT: &str = include_str!("console.js");
/// Where the script reports, relative to the preview's root.
pub const REPORT_PATH: &str = "/__studio/console";
/// lol_html buffers at most this much of one construct (a huge tag, say).
const REWRITER_MEMORY: usize = 4 * 1024 * 1024;

/// The script around its endpoint placeholder, split once.
static SCRIPT_PARTS: LazyLock<(&str, &str)> = LazyLock::new(|| {
    SCRIPT
        .split_once("__STUDIO_ENDPOINT__")
        .expect("console.js names its endpoint")
});

/// Elements the HTML parser keeps in the head ("in head" insertion mode);
/// any other element of content starts the body.
const HEAD_CONTENT: [&str; 11] = [
    "base", "basefont", "bgsound", "link", "meta", "noframes", "noscript", "script", "style",
    "template", "title",
];

/// The rewriter's selectors, parsed once (lol_html compiles them per page).
static HEAD: LazyLock<Selector> = LazyLock::new(|| "head".parse().unwrap());
static BODY: LazyLock<Selector> = LazyLock::new(|| "body".parse().unwrap());
static META: LazyLock<Selector> = LazyLock::new(|| "meta[http-equiv]".parse().unwrap());
static ANY: LazyLock<Selector> = LazyLock::new(|| "*".parse().unwrap());

/// The `<script>` element for one response. `prefix` is `/preview/ID` on a
/// path preview and empty on a host-based one.
pub fn script_tag(prefix: &str, nonce: &str) -> String {
    let (before, after) = *SCRIPT_PARTS;
    let mut tag = String::with_capacity(SCRIPT.len() + prefix.len() + nonce.len() + 64);
    tag.push_str("<script nonce=\"");
    tag.push_str(nonce);
    tag.push_str("\">");
    tag.push_str(before);
    tag.push_str(prefix);
    tag.push_str(REPORT_PATH);
    tag.push_str(after);
    tag.push_str("</script>");
    tag
}

type Out = Arc<Mutex<Vec<u8>>>;
type Sink = Box<dyn FnMut(&[u8]) + Send>;

/// Once `<body>` starts, the script is in and no `<meta>` CSP can follow
/// (browsers ignore one outside `<head>`), so the rest passes untouched.
/// Input is fed in slices at most this large (see [`cut`]), so little of
/// the body is parsed.
const SLICE: usize = 256;

/// Where the slice of `buf` starting at `at` ends: just after a `<body…>`
/// tag that starts within the next [`SLICE`] bytes, so that parsing stops
/// right there, or [`SLICE`] bytes on. (Text that only looks like the tag,
/// in a comment or a script, merely ends a slice early.)
fn cut(buf: &[u8], at: usize) -> usize {
    let limit = buf.len().min(at + SLICE);
    let window = &buf[at..limit];
    let start = window
        .windows(5)
        .position(|w| w[0] == b'<' && w[1..].eq_ignore_ascii_case(b"body"));
    if let Some(i) = start {
        if let Some(j) = buf[at + i..].iter().position(|&b| b == b'>') {
            return at + i + j + 1;
        }
    }
    limit
}

fn on(
    selector: &'static Selector,
    handler: impl FnMut(&mut Element<'_, '_>) -> HandlerResult + Send + 'static,
) -> (Cow<'static, Selector>, ElementContentHandlers<'static>) {
    (
        Cow::Borrowed(selector),
        ElementContentHandlers::default().element(handler),
    )
}

fn rewriter(
    tag: String,
    nonce: String,
    out: Out,
    body_seen: Arc<AtomicBool>,
) -> HtmlRewriter<'static, Sink> {
    let injected = Arc::new(AtomicBool::new(false));
    let (in_head, in_body, in_other) = (Arc::clone(&injected), Arc::clone(&injected), injected);
    // Shared by the three handlers that may place it, not copied for each.
    let tag: Arc<str> = tag.into();
    let (tag2, tag3) = (Arc::clone(&tag), Arc::clone(&tag));
    let other_seen = Arc::clone(&body_seen);
    let meta_body_seen = Arc::clone(&body_seen);
    let settings = Settings::new_send()
        .append_element_content_handler(on(&HEAD, move |el| {
            if !in_head.swap(true, Ordering::Relaxed) {
                el.prepend(&tag, ContentType::Html);
            }
            Ok(())
        }))
        // A page without <head>: before <body> still lands in the head.
        .append_element_content_handler(on(&BODY, move |el| {
            if !in_body.swap(true, Ordering::Relaxed) {
                el.before(&tag2, ContentType::Html);
            }
            body_seen.store(true, Ordering::Relaxed);
            Ok(())
        }))
        // A page with neither (`<h1>hi</h1>`, `<html><p>…`): before its
        // first element of content, where the parser opens the head for
        // it. An element that belongs in the head (`<title>`, `<meta>`…)
        // stays in that implied head; any other starts the body, and
        // nothing after it can be a `<meta>` CSP a browser heeds.
        .append_element_content_handler(on(&ANY, move |el| {
            let name = el.tag_name();
            if matches!(name.as_str(), "html" | "head" | "body") {
                return Ok(());
            }
            if !in_other.swap(true, Ordering::Relaxed) {
                el.before(&tag3, ContentType::Html);
            }
            if !HEAD_CONTENT.contains(&name.as_str()) {
                other_seen.store(true, Ordering::Relaxed);
            }
            Ok(())
        }))
        .append_element_content_handler(on(&META, move |el| {
            // Past the head a browser ignores it (CSP3: a `<meta>` policy
            // counts only as a child of `<head>`); so does this, whatever
            // is left of the slice the body started in.
            if meta_body_seen.load(Ordering::Relaxed) {
                return Ok(());
            }
            let is_csp = el
                .get_attribute("http-equiv")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("content-security-policy"));
            if let (true, Some(policy)) = (is_csp, el.get_attribute("content")) {
                el.set_attribute("content", &csp::amend(&policy, &nonce))?;
            }
            Ok(())
        }))
        .with_memory_settings(MemorySettings::new().with_max_allowed_memory_usage(REWRITER_MEMORY))
        // Strict mode fails the page on markup it cannot place for sure
        // (a `<title>` inside `<select>`, a `<script>` after `<frameset>`).
        // Both come after an element that starts the body, past which
        // nothing is rewritten: what it takes them for changes nothing.
        .with_strict(false);
    let sink: Sink = Box::new(move |c: &[u8]| out.lock().unwrap().extend_from_slice(c));
    HtmlRewriter::new(settings, sink)
}

struct State<B> {
    upstream: B,
    decoder: Decoder,
    /// `None` once the rest of the page passes through untouched.
    rewriter: Option<HtmlRewriter<'static, Sink>>,
    body_seen: Arc<AtomicBool>,
    /// What the rewriter has written.
    out: Out,
    /// Decoded bytes past `<body>`, sent as they are after `out`.
    rest: Option<Bytes>,
    ended: bool,
    /// Whether the page's first bytes have been looked at.
    started: bool,
    /// The page's first byte, when it came alone: kept until the next
    /// shows whether the two are a UTF-16 byte order mark.
    held: Vec<u8>,
}

fn bad(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
}

impl<B> State<B> {
    /// The next chunk ready to send, if any.
    fn ready(&mut self) -> Option<Bytes> {
        let written = std::mem::take(&mut *self.out.lock().unwrap());
        if !written.is_empty() {
            return Some(Bytes::from(written));
        }
        self.rest.take()
    }

    /// Called only once `ready` has drained everything.
    fn write(&mut self, mut decoded: Bytes) -> std::io::Result<()> {
        if !self.started {
            if !self.held.is_empty() {
                self.held.extend_from_slice(&decoded);
                decoded = Bytes::from(std::mem::take(&mut self.held));
            }
            // A byte order mark is two bytes, which may come apart.
            if decoded.len() < 2 && !self.ended {
                self.held = decoded.to_vec();
                return Ok(());
            }
            self.started = true;
            // A UTF-16 page (byte order mark): not for an HTML rewriter that
            // reads ASCII, nor for a UTF-8 script. It passes untouched.
            if super::sniff::not_ascii_compatible(None, &decoded) {
                self.rewriter = None;
            }
        }
        let Some(r) = self.rewriter.as_mut() else {
            self.rest = Some(decoded).filter(|d| !d.is_empty());
            return Ok(());
        };
        let mut at = 0;
        while at < decoded.len() {
            let end = cut(&decoded, at);
            r.write(&decoded[at..end]).map_err(bad)?;
            at = end;
            if self.body_seen.load(Ordering::Relaxed) {
                // Ending flushes whatever the rewriter holds, byte for byte.
                if let Some(r) = self.rewriter.take() {
                    r.end().map_err(bad)?;
                }
                if at < decoded.len() {
                    self.rest = Some(decoded.slice(at..));
                }
                return Ok(());
            }
        }
        Ok(())
    }

    fn end(&mut self) -> std::io::Result<()> {
        self.ended = true;
        let tail = self.decoder.finish()?;
        self.write(Bytes::from(tail))?;
        if let Some(r) = self.rewriter.take() {
            r.end().map_err(bad)?;
        }
        Ok(())
    }
}

/// The rewritten body: `upstream` decoded by `decoder`, with the script
/// injected and a meta CSP amended with `nonce`.
pub fn inject<B>(upstream: B, decoder: Decoder, tag: String, nonce: String) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::fmt::Display,
{
    let out: Out = Arc::default();
    let body_seen = Arc::new(AtomicBool::new(false));
    let rewriter = rewriter(tag, nonce, Arc::clone(&out), Arc::clone(&body_seen));
    let state = State {
        upstream,
        decoder,
        rewriter: Some(rewriter),
        body_seen,
        out,
        rest: None,
        ended: false,
        started: false,
        held: Vec::new(),
    };
    // Boxed: the state (the rewriter's above all) is large, and the stream
    // moves it in and out of its future at every chunk.
    let stream = futures_util::stream::unfold(Some(Box::new(state)), |state| async move {
        let mut s = state?;
        loop {
            if let Some(chunk) = s.ready() {
                return Some((Ok(chunk), Some(s)));
            }
            if s.ended {
                return None;
            }
            let step = match s.upstream.frame().await {
                Some(Ok(frame)) => match frame.into_data() {
                    // Past the head of an uncompressed page: the frame as is.
                    Ok(data) if s.rewriter.is_none() && s.decoder.is_identity() => {
                        return Some((Ok(data), Some(s)));
                    }
                    Ok(data) => s.decoder.feed(data).and_then(|d| s.write(d)),
                    Err(_) => continue, // trailers: dropped, as the body changed
                },
                Some(Err(e)) => Err(bad(e)),
                None => s.end(),
            };
            if let Err(e) = step {
                return Some((Err(e), None));
            }
        }
    });
    Body::from_stream(stream)
}

/// A rewritten page read whole: its pieces as the rewriter produced them
/// (sent as they are, not copied into one buffer) and its exact length.
#[derive(Debug)]
pub struct Page {
    chunks: std::collections::VecDeque<Bytes>,
    len: u64,
}

impl Page {
    /// `page` with `insert` at `at`, without copying either.
    pub fn spliced(page: Bytes, at: usize, insert: Bytes) -> Page {
        let len = (page.len() + insert.len()) as u64;
        let chunks = [page.slice(..at), insert, page.slice(at..)]
            .into_iter()
            .filter(|c| !c.is_empty())
            .collect();
        Page { chunks, len }
    }

    pub fn content_length(&self) -> u64 {
        self.len
    }
}

impl http_body::Body for Page {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let next = self.chunks.pop_front();
        if let Some(c) = &next {
            self.len -= c.len() as u64;
        }
        std::task::Poll::Ready(next.map(|c| Ok(http_body::Frame::data(c))))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.len)
    }
}

/// A rewritten body, read whole where it could be.
pub enum Collected {
    /// It ended within the limit.
    Whole(Page),
    /// It is larger: what was read, then the rest, to be streamed.
    Streaming(Body),
    /// It broke off (the app closed early, its compression is corrupt, the
    /// page decodes to too much): nothing has been sent yet.
    Failed(axum::Error),
}

/// Reads `body` to its end if it stays within `limit` bytes, so that it can
/// go out with a `Content-Length`.
pub async fn collect_within(body: Body, limit: usize) -> Collected {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let mut chunks = std::collections::VecDeque::new();
    let mut total = 0;
    while let Some(item) = stream.next().await {
        let chunk = match item {
            Ok(chunk) => chunk,
            Err(e) => return Collected::Failed(e),
        };
        total += chunk.len();
        chunks.push_back(chunk);
        if total > limit {
            let read = futures_util::stream::iter(chunks.into_iter().map(Ok));
            return Collected::Streaming(Body::from_stream(read.chain(stream)));
        }
    }
    Collected::Whole(Page {
        chunks,
        len: total as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;

    async fn run(html: &str, chunk: usize) -> String {
        // A body that arrives in small frames, like a slow network.
        let frames: Vec<Result<http_body::Frame<Bytes>, std::io::Error>> = html
            .as_bytes()
            .chunks(chunk)
            .map(|c| Ok(http_body::Frame::data(Bytes::copy_from_slice(c))))
            .collect();
        let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
        let out = inject(
            body,
            Decoder::Identity,
            "<script nonce=\"N\">S</script>".into(),
            "N".into(),
        );
        String::from_utf8(out.collect().await.unwrap().to_bytes().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn script_is_the_first_element_of_head_whatever_the_chunking() {
        let page = "<!doctype html><html><head><title>t</title></head><body>x</body></html>";
        for chunk in [1, 3, 7, 1000] {
            assert_eq!(
                run(page, chunk).await,
                "<!doctype html><html><head><script nonce=\"N\">S</script><title>t</title></head><body>x</body></html>"
            );
        }
    }

    #[tokio::test]
    async fn exactly_one_script_even_with_head_and_body() {
        let out = run("<head></head><body><head></head></body>", 5).await;
        assert_eq!(out.matches("<script").count(), 1, "{out}");
        let out = run("<html><body>no head</body></html>", 4).await;
        assert_eq!(
            out,
            "<html><script nonce=\"N\">S</script><body>no head</body></html>"
        );
    }

    #[tokio::test]
    async fn a_page_without_head_or_body_gets_the_script_before_its_first_element() {
        for (page, expected) in [
            (
                "<h1>hi</h1><p>x</p>",
                "<script nonce=\"N\">S</script><h1>hi</h1><p>x</p>",
            ),
            (
                "<!doctype html>\n<html><title>t</title><p>x",
                "<!doctype html>\n<html><script nonce=\"N\">S</script><title>t</title><p>x",
            ),
            (
                "<!-- c --><div>d</div>",
                "<!-- c --><script nonce=\"N\">S</script><div>d</div>",
            ),
        ] {
            for chunk in [1, 3, 1000] {
                assert_eq!(
                    run(page, chunk).await,
                    expected,
                    "{page} in {chunk}-byte pieces"
                );
            }
        }
        // Plain text with no element at all: nothing to attach to.
        assert_eq!(run("just text", 4).await, "just text");
    }

    #[tokio::test]
    async fn a_utf16_page_passes_untouched() {
        let page: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain(
                "<html><head></head></html>"
                    .encode_utf16()
                    .flat_map(|u| u.to_le_bytes()),
            )
            .collect();
        let frames = vec![Ok::<_, std::io::Error>(http_body::Frame::data(
            Bytes::from(page.clone()),
        ))];
        let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
        let out = inject(
            body,
            Decoder::Identity,
            "<script>S</script>".into(),
            "N".into(),
        )
        .collect()
        .await
        .unwrap()
        .to_bytes();
        assert_eq!(&out[..], &page[..]);
    }

    /// Found by the `html_inject` fuzz target: a page whose first piece
    /// was a single byte was taken for ASCII, though that byte and the
    /// next were a UTF-16 byte order mark.
    #[tokio::test]
    async fn a_utf16_page_passes_untouched_when_its_byte_order_mark_comes_apart() {
        for bom in [[0xFE, 0xFF], [0xFF, 0xFE]] {
            let mut page = bom.to_vec();
            page.extend_from_slice(b"<html><head></head></html>");
            let frames: Vec<Result<http_body::Frame<Bytes>, std::io::Error>> =
                [&page[..1], &[][..], &page[1..2], &page[2..]]
                    .into_iter()
                    .map(|c| Ok(http_body::Frame::data(Bytes::copy_from_slice(c))))
                    .collect();
            let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
            let out = inject(
                body,
                Decoder::Identity,
                "<script>S</script>".into(),
                "N".into(),
            )
            .collect()
            .await
            .unwrap()
            .to_bytes();
            assert_eq!(&out[..], &page[..]);
        }
        // A page of one byte is sent all the same.
        assert_eq!(run("<", 1).await, "<");
    }

    #[tokio::test]
    async fn the_body_after_head_passes_byte_for_byte() {
        // Odd constructs far past <body> and across slice boundaries.
        let mut page = String::from("<head><title>t</title></head><body>");
        for i in 0..2000 {
            page.push_str(&format!(
                "<p a=\"x>{i}\">&am<!-- c{i} --><script>1 < 2</script>"
            ));
        }
        let want = page.replacen("<head>", "<head><script nonce=\"N\">S</script>", 1);
        for chunk in [1, 100, 4093, 1 << 20] {
            assert!(run(&page, chunk).await == want, "chunk {chunk}");
        }
    }

    #[tokio::test]
    async fn meta_csp_is_amended_with_the_nonce() {
        let out = run("<head><meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'\"></head>", 6).await;
        assert!(
            out.contains(
                "content=\"default-src 'none'; script-src 'nonce-N'; connect-src 'self'\""
            ),
            "{out}"
        );
        // Other meta tags are left alone.
        let page = "<head><meta http-equiv=\"refresh\" content=\"5\"></head>";
        assert!(run(page, 6).await.contains("content=\"5\""));
    }

    /// Found by the `html_inject` fuzz target: a page without `<head>`
    /// whose first element is `<title>` had its `<meta>` CSP amended only
    /// when it came in the same piece of the page, though a browser puts
    /// both in the head and heeds the policy.
    #[tokio::test]
    async fn meta_csp_in_an_implied_head_is_amended_whatever_the_chunking() {
        let page = "<!doctype html>\n<title>t</title><meta http-equiv=\"Content-Security-Policy\" content=\"script-src 'self'\"><p>x";
        let want = "<!doctype html>\n<script nonce=\"N\">S</script><title>t</title><meta http-equiv=\"Content-Security-Policy\" content=\"script-src 'self' 'nonce-N'\"><p>x";
        for chunk in [1, 7, 20, 1000] {
            assert_eq!(run(page, chunk).await, want, "{chunk}-byte pieces");
        }
    }

    /// Once an element of content has started the body, a later `<meta>`
    /// CSP is one a browser ignores: left as it is, whatever the chunking.
    #[tokio::test]
    async fn meta_csp_after_the_body_started_is_left_alone_whatever_the_chunking() {
        let page =
            "<p>x</p><meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'\">";
        let want = format!("<script nonce=\"N\">S</script>{page}");
        for chunk in [1, 7, 1000] {
            assert_eq!(run(page, chunk).await, want, "{chunk}-byte pieces");
        }
    }

    /// Found by the `html_inject` fuzz target: markup the parser cannot
    /// place for sure, in the piece of the page it read, failed the page.
    #[tokio::test]
    async fn markup_the_parser_cannot_place_passes_as_it_is() {
        for (page, expected) in [
            (
                "<head></head><select><title>x</title></select>",
                "<head><script nonce=\"N\">S</script></head><select><title>x</title></select>",
            ),
            (
                "<html><frameset><script>1</script></frameset></html>",
                "<html><script nonce=\"N\">S</script><frameset><script>1</script></frameset></html>",
            ),
        ] {
            for chunk in [1, 1000] {
                assert_eq!(run(page, chunk).await, expected, "{page} in {chunk}-byte pieces");
            }
        }
    }

    #[tokio::test]
    async fn gzip_input_is_decoded_before_rewriting() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(b"<head></head>ok").unwrap();
        let mut h = axum::http::HeaderMap::new();
        h.insert("content-encoding", "gzip".parse().unwrap());
        let body = Full::new(Bytes::from(gz.finish().unwrap()));
        let out = inject(
            body,
            Decoder::for_headers(&h).unwrap(),
            "<i></i>".into(),
            "N".into(),
        );
        assert_eq!(
            &out.collect().await.unwrap().to_bytes()[..],
            b"<head><i></i></head>ok"
        );
    }

    #[test]
    fn slices_end_after_a_body_tag_or_at_the_slice_size() {
        let page = b"<html><head></head><BODY class=x>rest";
        assert_eq!(&page[..cut(page, 0)], b"<html><head></head><BODY class=x>");
        let long = vec![b'a'; 1000];
        assert_eq!(cut(&long, 0), SLICE);
        assert_eq!(cut(&long, 900), 1000);
        // A tag cut off at the end of the buffer: the slice size decides.
        assert_eq!(cut(b"xx<body clas", 0), 12);
    }

    #[test]
    fn script_tag_carries_nonce_and_endpoint() {
        let t = script_tag("/preview/session-x", "NONCE");
        assert!(t.starts_with("<script nonce=\"NONCE\">"));
        assert!(t.contains("\"/preview/session-x/__studio/console\""));
        assert!(!t.contains("__STUDIO_ENDPOINT__"));
        assert!(script_tag("", "n").contains("\"/__studio/console\""));
    }

    #[tokio::test]
    async fn a_body_within_the_limit_is_read_whole_and_a_larger_one_streams_unchanged() {
        let chunks = || {
            let frames: Vec<Result<Bytes, std::io::Error>> =
                (0..10u8).map(|i| Ok(Bytes::from(vec![i; 100]))).collect();
            Body::from_stream(futures_util::stream::iter(frames))
        };
        let Collected::Whole(whole) = collect_within(chunks(), 1000).await else {
            panic!("1000 bytes fit a limit of 1000");
        };
        assert_eq!(whole.content_length(), 1000);
        let whole = whole.collect().await.unwrap().to_bytes();
        let Collected::Streaming(streamed) = collect_within(chunks(), 999).await else {
            panic!("1000 bytes do not fit a limit of 999");
        };
        let all = streamed.collect().await.unwrap().to_bytes();
        assert_eq!(all, whole, "nothing lost or reordered");
    }
}
