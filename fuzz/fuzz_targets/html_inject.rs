//! The HTML injector (`preview::inject`): any page, in any split into
//! frames, identity or gzip-coded; and the CSP amendment it and the proxy's
//! header rewriting use (`preview::csp::amend`).
//!
//! Invariants of the injector: the body never fails (the page is whole and
//! decodable); the script is there at most once, exactly once when the page
//! has an element a browser puts it before (any but `<html>`), and in the
//! same place whatever the framing; a page without a CSP `<meta>` comes out
//! byte for byte as it went in, but for the script; UTF-8 in is UTF-8 out.
//!
//! Invariants of the CSP amendment, judged by a browser's reading of the
//! policy (CSP3: comma-separated policies, `;`-separated directives, the
//! first of duplicates counts): every policy lets the nonce'd script run
//! and report to `'self'`, and none is loosened: a directive only gains
//! the nonce (script directives) or `'self'` (connect), loses nothing but
//! `'none'`, and the only directives added are `script-src` and
//! `connect-src` copied from `default-src`.
#![no_main]

use std::io::Write;

use bytes::Bytes;
use claude_studio::preview::fuzzing as p;
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;

const NONCE: &str = "AbC-_0123456789xyzXYZ";

/// The input, as text: a line of options (frame sizes, used in turn, and
/// `gzip`), a line with a CSP, then the page (any bytes).
///
/// ```text
/// 7 1 30 gzip
/// default-src 'self'; script-src 'none'
/// <!doctype html><head><title>t</title></head><body>x</body>
/// ```
struct Input<'a> {
    splits: Vec<u8>,
    gzip: bool,
    csp: &'a str,
    html: &'a [u8],
}

impl<'a> Input<'a> {
    fn parse(data: &'a [u8]) -> Input<'a> {
        let mut parts = data.splitn(3, |&b| b == b'\n');
        let options = std::str::from_utf8(parts.next().unwrap_or_default()).unwrap_or("");
        let csp = std::str::from_utf8(parts.next().unwrap_or_default()).unwrap_or("");
        Input {
            splits: options
                .split_ascii_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect(),
            gzip: options.split_ascii_whitespace().any(|w| w == "gzip"),
            csp,
            html: parts.next().unwrap_or_default(),
        }
    }
}

fn frames(data: &[u8], splits: &[u8]) -> Vec<Bytes> {
    if splits.is_empty() {
        return vec![Bytes::copy_from_slice(data)];
    }
    let mut out = Vec::new();
    let mut at = 0;
    let mut i = 0;
    while at < data.len() {
        // Empty frames happen too (and then a byte, so that it ends).
        let n = usize::from(splits[i % splits.len()]) % 48;
        if n == 0 {
            out.push(Bytes::new());
        }
        let end = (at + n.max(1)).min(data.len());
        out.push(Bytes::copy_from_slice(&data[at..end]));
        at = end;
        i += 1;
    }
    out
}

fn run(frames: Vec<Bytes>, gzip: bool, tag: &str) -> Vec<u8> {
    let mut headers = axum::http::HeaderMap::new();
    if gzip {
        headers.insert("content-encoding", "gzip".parse().unwrap());
    }
    let decoder = p::Decoder::for_headers(&headers).unwrap();
    let frames: Vec<Result<http_body::Frame<Bytes>, std::io::Error>> = frames
        .into_iter()
        .map(|b| Ok(http_body::Frame::data(b)))
        .collect();
    let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
    let out = p::inject(body, decoder, tag.to_string(), NONCE.to_string());
    futures_executor::block_on(out.collect())
        .unwrap_or_else(|e| panic!("the page failed: {e}"))
        .to_bytes()
        .to_vec()
}

fn count(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

/// Elements a browser would put the script before: any but `<html>` (a
/// second rewriter, with nothing but a counter).
fn has_element(html: &[u8]) -> bool {
    use std::cell::Cell;
    let seen = Cell::new(false);
    let mut r = lol_html::HtmlRewriter::new(
        lol_html::Settings::new()
            .with_strict(false)
            .append_element_content_handler(lol_html::element!("*", |el| {
                if el.tag_name() != "html" {
                    seen.set(true);
                }
                Ok(())
            })),
        |_: &[u8]| {},
    );
    r.write(html).and_then(|_| r.end()).is_ok() && seen.get()
}

fn check_inject(input: &Input) {
    let tag = p::script_tag("/preview/session-x", NONCE);
    let html = input.html;
    let data = if input.gzip {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(html).unwrap();
        gz.finish().unwrap()
    } else {
        html.to_vec()
    };
    let out = run(frames(&data, &input.splits), input.gzip, &tag);
    let whole = run(vec![Bytes::from(html.to_vec())], false, &tag);
    let n = count(&out, tag.as_bytes());
    assert!(n <= 1, "the script {n} times");
    assert_eq!(out, whole, "framing changed the page");
    let utf16 = html.starts_with(&[0xFE, 0xFF]) || html.starts_with(&[0xFF, 0xFE]);
    if utf16 {
        assert_eq!(out, html, "a UTF-16 page passes untouched");
        return;
    }
    if has_element(html) {
        assert_eq!(n, 1, "a page with elements gets the script");
    }
    let lower = html.to_ascii_lowercase();
    if count(&lower, b"content-security-policy") == 0 {
        let mut without = out.clone();
        if let Some(i) = out.windows(tag.len()).position(|w| w == tag.as_bytes()) {
            without.drain(i..i + tag.len());
        }
        assert!(without == html, "the page changed beyond the script");
    }
    if std::str::from_utf8(html).is_ok() {
        assert!(std::str::from_utf8(&out).is_ok(), "UTF-8 in, not UTF-8 out");
    }
}

/// One policy as a browser reads it: directives (name lower-cased, tokens).
type Policy = Vec<(String, Vec<String>)>;

fn policies(v: &str) -> Vec<Policy> {
    v.split(',')
        .map(|p| {
            p.split(';')
                .filter_map(|d| {
                    let mut t = d.split_ascii_whitespace();
                    let name = t.next()?.to_ascii_lowercase();
                    Some((name, t.map(String::from).collect()))
                })
                .collect()
        })
        .collect()
}

fn first<'a>(p: &'a Policy, name: &str) -> Option<&'a Vec<String>> {
    p.iter().find(|(n, _)| n == name).map(|(_, s)| s)
}

fn has(s: &[String], t: &str) -> bool {
    s.iter().any(|x| x.eq_ignore_ascii_case(t))
}

fn runs_nonced_script(p: &Policy) -> bool {
    let Some(s) = first(p, "script-src-elem")
        .or_else(|| first(p, "script-src"))
        .or_else(|| first(p, "default-src"))
    else {
        return true;
    };
    let keyed = s.iter().any(|x| {
        let l = x.to_ascii_lowercase();
        l.starts_with("'nonce-")
            || l.starts_with("'sha256-")
            || l.starts_with("'sha384-")
            || l.starts_with("'sha512-")
    });
    s.iter().any(|x| *x == format!("'nonce-{NONCE}'"))
        || (has(s, "'unsafe-inline'") && !keyed && !has(s, "'strict-dynamic'"))
}

fn connects_to_self(p: &Policy) -> bool {
    first(p, "connect-src")
        .or_else(|| first(p, "default-src"))
        .is_none_or(|s| has(s, "'self'") || has(s, "*"))
}

fn check_csp(v: &str) {
    let out = p::amend_csp(v, NONCE);
    if axum::http::HeaderValue::from_str(v).is_ok() {
        assert!(axum::http::HeaderValue::from_str(&out).is_ok(), "{out:?}");
    }
    let (before, after) = (policies(v), policies(&out));
    assert_eq!(before.len(), after.len(), "{v:?} -> {out:?}");
    let nonce = format!("'nonce-{NONCE}'");
    for (b, a) in before.iter().zip(&after) {
        assert!(
            runs_nonced_script(a),
            "{v:?} -> {out:?}: the script is blocked"
        );
        assert!(
            connects_to_self(a),
            "{v:?} -> {out:?}: its report is blocked"
        );
        let default = first(b, "default-src");
        let mut seen = std::collections::HashSet::new();
        for (name, sources) in a {
            if !seen.insert(name.clone()) {
                continue;
            }
            let gain: &[&str] = match name.as_str() {
                "script-src" | "script-src-elem" => &[nonce.as_str()],
                "connect-src" => &["'self'"],
                _ => &[],
            };
            let was = match first(b, name) {
                Some(s) => s,
                None => {
                    assert!(
                        gain.len() == 1 && name != "script-src-elem",
                        "{v:?} -> {out:?}: {name} added"
                    );
                    default
                        .unwrap_or_else(|| panic!("{v:?} -> {out:?}: {name} from no default-src"))
                }
            };
            for s in was {
                assert!(
                    sources.contains(s) || s.eq_ignore_ascii_case("'none'"),
                    "{v:?} -> {out:?}: {name} lost {s}"
                );
            }
            for s in sources {
                assert!(
                    was.contains(s) || gain.contains(&s.as_str()),
                    "{v:?} -> {out:?}: {name} gained {s}"
                );
            }
        }
        for (name, _) in b {
            assert!(first(a, name).is_some(), "{v:?} -> {out:?}: {name} dropped");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let input = Input::parse(data);
    check_csp(input.csp);
    check_inject(&input);
});
