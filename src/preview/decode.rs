//! Incremental decoding of a compressed response body, so HTML can be
//! rewritten as it streams. Each chunk in gives whatever decoded bytes it
//! completes; nothing waits for the whole body.
//!
//! A few compressed bytes can stand for gigabytes (1.6 KB of brotli for
//! 1 GiB): decoded output is counted, and a page that decodes to more than
//! [`MAX_DECODED`] is an error, so one response can never hold more than
//! that in memory, however it was compressed.

use std::io::{self, Write};

use axum::http::{header, HeaderMap};
use bytes::Bytes;

/// The most a compressed page may decode to.
pub const MAX_DECODED: usize = 16 * 1024 * 1024;

/// Where a decoder writes: a buffer the caller empties after each chunk,
/// and a count of everything written, refused past the limit.
#[derive(Default)]
pub struct Sink {
    buf: Vec<u8>,
    total: usize,
    limit: usize,
}

impl Sink {
    fn new(limit: usize) -> Sink {
        Sink {
            buf: Vec::new(),
            total: 0,
            limit,
        }
    }

    fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
}

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.total += data.len();
        if self.total > self.limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the page decodes to more than {} MiB",
                    self.limit / (1024 * 1024)
                ),
            ));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub enum Decoder {
    Identity,
    Gzip(Box<flate2::write::MultiGzDecoder<Sink>>),
    Zlib(Box<flate2::write::ZlibDecoder<Sink>>),
    RawDeflate(Box<flate2::write::DeflateDecoder<Sink>>),
    /// `deflate` is zlib-wrapped by the standard and raw in some servers;
    /// the first bytes tell which. (The bytes so far, and the limit.)
    DeflateUndecided(Vec<u8>, usize),
    Brotli(Box<brotli::DecompressorWriter<Sink>>),
}

impl Decoder {
    /// The decoder for a response's `Content-Encoding`; `None` for a coding
    /// (or a stack of codings) it cannot decode.
    pub fn for_headers(headers: &HeaderMap) -> Option<Decoder> {
        Decoder::for_headers_within(headers, MAX_DECODED)
    }

    /// [`Decoder::for_headers`] with another limit than [`MAX_DECODED`] on
    /// what the body may decode to (the fuzz targets use a small one).
    #[doc(hidden)]
    pub fn for_headers_within(headers: &HeaderMap, limit: usize) -> Option<Decoder> {
        let mut codings = headers
            .get_all(header::CONTENT_ENCODING)
            .iter()
            .flat_map(|v| v.to_str().unwrap_or("?").split(','))
            .map(|c| c.trim().to_ascii_lowercase())
            .filter(|c| !c.is_empty() && c != "identity");
        let first = codings.next();
        if codings.next().is_some() {
            return None;
        }
        Some(match first.as_deref() {
            None => Decoder::Identity,
            Some("gzip" | "x-gzip") => Decoder::Gzip(Box::new(flate2::write::MultiGzDecoder::new(
                Sink::new(limit),
            ))),
            Some("deflate") => Decoder::DeflateUndecided(Vec::new(), limit),
            Some("br") => Decoder::Brotli(Box::new(brotli::DecompressorWriter::new(
                Sink::new(limit),
                16 * 1024,
            ))),
            Some(_) => return None,
        })
    }

    pub fn is_identity(&self) -> bool {
        matches!(self, Decoder::Identity)
    }

    /// Feeds compressed bytes; returns the decoded bytes now available
    /// (without a copy when there is nothing to decode).
    pub fn feed(&mut self, data: Bytes) -> io::Result<Bytes> {
        self.feed_slice(&data).map(|v| v.unwrap_or(data))
    }

    /// `None`: the input is the output.
    fn feed_slice(&mut self, data: &[u8]) -> io::Result<Option<Bytes>> {
        let decoded = match self {
            Decoder::Identity => return Ok(None),
            Decoder::Gzip(d) => {
                d.write_all(data)?;
                d.get_mut().take()
            }
            Decoder::Zlib(d) => {
                d.write_all(data)?;
                d.get_mut().take()
            }
            Decoder::RawDeflate(d) => {
                d.write_all(data)?;
                d.get_mut().take()
            }
            Decoder::Brotli(d) => {
                d.write_all(data)?;
                d.get_mut().take()
            }
            Decoder::DeflateUndecided(head, limit) => {
                head.extend_from_slice(data);
                if head.len() < 2 {
                    return Ok(Some(Bytes::new()));
                }
                let (head, limit) = (std::mem::take(head), *limit);
                *self = if is_zlib_header(head[0], head[1]) {
                    Decoder::Zlib(Box::new(flate2::write::ZlibDecoder::new(Sink::new(limit))))
                } else {
                    Decoder::RawDeflate(Box::new(flate2::write::DeflateDecoder::new(Sink::new(
                        limit,
                    ))))
                };
                return self.feed_slice(&head);
            }
        };
        Ok(Some(Bytes::from(decoded)))
    }

    /// Ends the stream; returns the last decoded bytes.
    pub fn finish(&mut self) -> io::Result<Vec<u8>> {
        match self {
            Decoder::Identity => Ok(Vec::new()),
            Decoder::Gzip(d) => {
                d.try_finish()?;
                Ok(d.get_mut().take())
            }
            Decoder::Zlib(d) => {
                d.try_finish()?;
                Ok(d.get_mut().take())
            }
            Decoder::RawDeflate(d) => {
                d.try_finish()?;
                Ok(d.get_mut().take())
            }
            Decoder::Brotli(d) => {
                d.close()?;
                Ok(d.get_mut().take())
            }
            Decoder::DeflateUndecided(head, _) if head.is_empty() => Ok(Vec::new()),
            Decoder::DeflateUndecided(..) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "truncated deflate stream",
            )),
        }
    }
}

/// RFC 1950: CM = 8 and the 16-bit header is a multiple of 31.
fn is_zlib_header(b0: u8, b1: u8) -> bool {
    b0 & 0x0f == 8 && (u16::from(b0) << 8 | u16::from(b1)) % 31 == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(enc: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_ENCODING, enc.parse().unwrap());
        h
    }

    /// Feeds `data` a few bytes at a time, as a network would.
    fn decode_chunked(mut d: Decoder, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in data.chunks(7) {
            out.extend(d.feed(Bytes::copy_from_slice(chunk)).unwrap());
        }
        out.extend(d.finish().unwrap());
        out
    }

    const TEXT: &[u8] = b"<html><head></head><body>hello hello hello hello</body></html>";

    #[test]
    fn gzip_zlib_raw_deflate_and_brotli_decode_in_pieces() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(TEXT).unwrap();
        assert_eq!(
            decode_chunked(
                Decoder::for_headers(&headers("gzip")).unwrap(),
                &gz.finish().unwrap()
            ),
            TEXT
        );

        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(TEXT).unwrap();
        assert_eq!(
            decode_chunked(
                Decoder::for_headers(&headers("deflate")).unwrap(),
                &z.finish().unwrap()
            ),
            TEXT
        );

        let mut raw =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        raw.write_all(TEXT).unwrap();
        assert_eq!(
            decode_chunked(
                Decoder::for_headers(&headers("Deflate")).unwrap(),
                &raw.finish().unwrap()
            ),
            TEXT
        );

        let mut br = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut br, 4096, 5, 22);
            w.write_all(TEXT).unwrap();
        }
        assert_eq!(
            decode_chunked(Decoder::for_headers(&headers("br")).unwrap(), &br),
            TEXT
        );
    }

    #[test]
    fn unknown_or_stacked_codings_are_not_decoded() {
        assert!(Decoder::for_headers(&headers("zstd")).is_none());
        assert!(Decoder::for_headers(&headers("gzip, br")).is_none());
        assert!(Decoder::for_headers(&HeaderMap::new())
            .unwrap()
            .is_identity());
        assert!(Decoder::for_headers(&headers("identity"))
            .unwrap()
            .is_identity());
    }

    /// Twice the limit of one byte, brotli-compressed to a few kilobytes:
    /// decoding stops with an error at the limit instead of going on.
    #[test]
    fn a_decompression_bomb_stops_at_the_limit() {
        let mut bomb = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut bomb, 4096, 1, 22);
            let block = vec![b'a'; 1024 * 1024];
            for _ in 0..2 * MAX_DECODED / block.len() {
                w.write_all(&block).unwrap();
            }
        }
        assert!(bomb.len() < 64 * 1024, "{} bytes", bomb.len());
        let mut d = Decoder::for_headers(&headers("br")).unwrap();
        let mut decoded = 0;
        let mut failed = None;
        for chunk in bomb.chunks(1024) {
            match d.feed(Bytes::copy_from_slice(chunk)) {
                Ok(out) => decoded += out.len(),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        let e = failed.expect("the bomb is refused");
        assert!(e.to_string().contains("MiB"), "{e}");
        assert!(decoded <= MAX_DECODED, "{decoded}");
    }

    #[test]
    fn corrupt_input_is_an_error_not_a_panic() {
        let mut d = Decoder::for_headers(&headers("gzip")).unwrap();
        let r = d
            .feed(Bytes::from_static(b"definitely not gzip data at all"))
            .and_then(|_| d.finish());
        assert!(r.is_err());
    }
}
