//! Decoding a compressed response body (`preview::decode::Decoder`): gzip,
//! zlib or raw deflate (told apart by the first bytes), brotli, fed in any
//! split, with a small limit on what it may decode to.
//!
//! The input is either raw bytes taken as the compressed stream (garbage,
//! truncated or crafted streams), or a text compressed here, which must
//! come back exactly when it fits the limit.
//!
//! Invariants: never a panic; never more decoded than the limit (a bomb is
//! cut there, with an error); a valid stream within the limit decodes to
//! its text whatever the split; one over the limit is an error.
#![no_main]

use std::io::Write;

use axum::http::HeaderMap;
use bytes::Bytes;
use claude_studio::preview::fuzzing::Decoder;
use libfuzzer_sys::fuzz_target;

const CODINGS: [&str; 5] = ["gzip", "x-gzip", "deflate", "br", "identity"];

/// The input: a line of options, then the data (any bytes).
///
/// ```text
/// br compress limit=4096 repeat=300 split=7,1,4000
/// <html>the text compressed here</html>
/// ```
///
/// Options: the coding (`gzip`, `x-gzip`, `deflate`, `br`, `identity`;
/// `deflate` is zlib-wrapped unless `raw`), `compress` (the data is the
/// text, compressed here; else it is the stream itself), `repeat=N` (the
/// text N times: a small bomb), `limit=N` (bytes it may decode to),
/// `split=A,B,…` (frame sizes, used in turn; 0 is an empty frame).
struct Input<'a> {
    coding: &'a str,
    compress: bool,
    zlib: bool,
    limit: usize,
    repeat: usize,
    splits: Vec<usize>,
    data: &'a [u8],
}

impl<'a> Input<'a> {
    fn parse(data: &'a [u8]) -> Input<'a> {
        let (options, data) = match data.iter().position(|&b| b == b'\n') {
            Some(i) => (&data[..i], &data[i + 1..]),
            None => (&b""[..], data),
        };
        let options = std::str::from_utf8(options).unwrap_or("");
        let mut input = Input {
            coding: "gzip",
            compress: false,
            zlib: true,
            limit: 1 << 16,
            repeat: 1,
            splits: Vec::new(),
            data,
        };
        for o in options.split_ascii_whitespace() {
            let num = |v: &str| v.parse::<usize>().unwrap_or(0);
            match o.split_once('=') {
                Some(("limit", v)) => input.limit = num(v) % (1 << 20),
                Some(("repeat", v)) => input.repeat = num(v) % 4096 + 1,
                Some(("split", v)) => input.splits = v.split(',').map(|n| num(n) % 8192).collect(),
                _ if CODINGS.contains(&o) => {
                    input.coding = CODINGS[CODINGS.iter().position(|c| *c == o).unwrap()]
                }
                _ if o == "compress" => input.compress = true,
                _ if o == "raw" => input.zlib = false,
                _ => {}
            }
        }
        input
    }
}

fn compress(coding: &str, zlib: bool, text: &[u8]) -> Vec<u8> {
    match coding {
        "gzip" | "x-gzip" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(text).unwrap();
            e.finish().unwrap()
        }
        "deflate" if zlib => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(text).unwrap();
            e.finish().unwrap()
        }
        "deflate" => {
            let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(text).unwrap();
            e.finish().unwrap()
        }
        "br" => {
            let mut out = Vec::new();
            {
                let mut w = brotli::CompressorWriter::new(&mut out, 4096, 1, 18);
                w.write_all(text).unwrap();
            }
            out
        }
        _ => text.to_vec(),
    }
}

fuzz_target!(|data: &[u8]| {
    let input = Input::parse(data);
    let coding = input.coding;
    let mut h = HeaderMap::new();
    h.insert("content-encoding", coding.parse().unwrap());
    let limit = input.limit;
    let mut d = Decoder::for_headers_within(&h, limit).expect("a coding it decodes");
    // At most 256 KiB of text: enough to go past any limit the input sets.
    let repeat = input
        .repeat
        .min((256 << 10) / input.data.len().max(1))
        .max(1);
    let text: Option<Vec<u8>> = input.compress.then(|| input.data.repeat(repeat));
    let stream = match &text {
        None => input.data.to_vec(),
        Some(t) => compress(coding, input.zlib, t),
    };
    let identity = coding == "identity";

    let mut out = Vec::new();
    let mut failed = false;
    let mut at = 0;
    let mut i = 0;
    while at < stream.len() {
        let n = match input.splits.get(i % input.splits.len().max(1)) {
            Some(n) => *n,
            None => stream.len(),
        };
        if n == 0 {
            // An empty frame changes nothing.
            let b = d.feed(Bytes::new()).expect("an empty frame is no error");
            assert!(b.is_empty() || identity);
        }
        let end = (at + n.max(1)).min(stream.len());
        match d.feed(Bytes::copy_from_slice(&stream[at..end])) {
            Ok(b) => out.extend_from_slice(&b),
            Err(_) => {
                failed = true;
                break;
            }
        }
        at = end;
        i += 1;
        if !identity {
            assert!(
                out.len() <= limit,
                "{} decoded past the limit {limit}",
                out.len()
            );
        }
    }
    if !failed {
        match d.finish() {
            Ok(rest) => out.extend(rest),
            Err(_) => failed = true,
        }
    }
    if identity {
        assert!(!failed);
        assert_eq!(out, stream);
        return;
    }
    assert!(
        out.len() <= limit,
        "{} decoded past the limit {limit}",
        out.len()
    );
    if let Some(t) = text {
        if t.len() <= limit {
            assert!(!failed, "a valid stream of {} bytes failed", t.len());
            assert!(out == t, "a valid stream decoded to something else");
        } else {
            assert!(failed, "{} bytes over the limit {limit} passed", t.len());
        }
    }
});
