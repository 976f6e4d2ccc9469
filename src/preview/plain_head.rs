//! The common page, injected without a parser: one that opens plainly
//! (`<!doctype html>`, `<html …>`, then `<head …>`, with only whitespace
//! between) and has no `http-equiv` anywhere, so no `<meta>` policy to
//! amend. The script goes right after its `<head …>` tag, which is exactly
//! where the rewriter (`inject`) puts it, byte for byte: the rewriter's
//! first element of content is that `<head>`, and nothing else in the page
//! would be touched. Any other page, and any doubt about where a tag ends,
//! goes to the rewriter.
//!
//! Building lol_html's rewriter and parsing a page's head costs far more
//! than the page's trip through the proxy; looking for the tag and for
//! `http-equiv` costs little.

/// The largest page looked at here: past it, scanning the whole page for
/// `http-equiv` would cost more than the rewriter, which stops at `<body>`.
pub const MAX_PLAIN_PAGE: usize = 256 * 1024;

/// Where the script goes in `page`: just after its `<head …>` tag. `None`
/// when the page does not open plainly, or may carry a `<meta http-equiv>`.
pub fn insertion_point(page: &[u8]) -> Option<usize> {
    let mut i = skip_space(page, 0);
    if starts_with_ignore_case(&page[i..], b"<!doctype") {
        // A doctype ends at its first `>`, quoted or not (in a quoted
        // identifier a `>` is an "abrupt" end, but an end).
        i += page[i..].iter().position(|&b| b == b'>')? + 1;
        i = skip_space(page, i);
    }
    if let Some(after_name) = start_tag(page, i, b"html") {
        i = skip_space(page, tag_end(page, after_name)?);
    }
    let at = tag_end(page, start_tag(page, i, b"head")?)?;
    (!names_http_equiv(page)).then_some(at)
}

/// HTML's whitespace between tags.
fn is_space(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | b'\x0c' | b'\r' | b' ')
}

fn skip_space(page: &[u8], mut i: usize) -> usize {
    while i < page.len() && is_space(page[i]) {
        i += 1;
    }
    i
}

fn starts_with_ignore_case(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// If a start tag named `name` begins at `i` (`<head>`, `<HEAD lang=x>`,
/// not `<header>` nor `<head/>`), where its name ends.
fn start_tag(page: &[u8], i: usize, name: &[u8]) -> Option<usize> {
    let rest = page.get(i..)?;
    let after = 1 + name.len();
    let is = rest.first() == Some(&b'<')
        && starts_with_ignore_case(&rest[1..], name)
        && rest.get(after).is_some_and(|&b| b == b'>' || is_space(b));
    is.then_some(i + after)
}

/// Where the start tag whose name ends at `i` ends (just past its `>`),
/// reading its attributes as HTML's tokenizer does. `None` for anything
/// this reading is not sure of (a `/`, a quote or `<` where a name would
/// be, a missing value, the page's end), which the rewriter then handles.
fn tag_end(page: &[u8], mut i: usize) -> Option<usize> {
    loop {
        i = skip_space(page, i);
        match *page.get(i)? {
            b'>' => return Some(i + 1),
            b'/' | b'<' | b'"' | b'\'' | b'=' => return None,
            _ => {}
        }
        // An attribute's name.
        while !matches!(*page.get(i)?, b'=' | b'>') && !is_space(page[i]) {
            if matches!(page[i], b'/' | b'<' | b'"' | b'\'') {
                return None;
            }
            i += 1;
        }
        i = skip_space(page, i);
        if page.get(i) != Some(&b'=') {
            continue;
        }
        i = skip_space(page, i + 1);
        match *page.get(i)? {
            q @ (b'"' | b'\'') => {
                i += 1 + page.get(i + 1..)?.iter().position(|&b| b == q)? + 1;
            }
            b'>' => return None,
            _ => {
                // Unquoted: up to whitespace or `>`.
                while !matches!(*page.get(i)?, b'>') && !is_space(page[i]) {
                    if matches!(page[i], b'"' | b'\'' | b'<' | b'=' | b'`') {
                        return None;
                    }
                    i += 1;
                }
            }
        }
    }
}

/// Whether `http-equiv` appears anywhere in the page, in any case: the
/// only attribute that makes a `<meta>` a policy to amend. Found through
/// its rare `q`.
fn names_http_equiv(page: &[u8]) -> bool {
    const NEEDLE: &[u8] = b"http-equiv";
    const Q: usize = 6; // where the `q` is in the needle
    const _: () = assert!(NEEDLE[Q] == b'q');
    memchr::memchr2_iter(b'q', b'Q', page).any(|at| {
        at >= Q
            && page
                .get(at - Q..at - Q + NEEDLE.len())
                .is_some_and(|w| w.eq_ignore_ascii_case(NEEDLE))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(page: &str) -> Option<&str> {
        insertion_point(page.as_bytes()).map(|i| &page[..i])
    }

    #[test]
    fn a_plain_page_gets_the_script_just_after_its_head_tag() {
        for (page, head) in [
            ("<!doctype html><html><head><title>t</title>", "<!doctype html><html><head>"),
            (
                "<!DOCTYPE html>\n<html lang=\"en\" class='a>b'>\n  <HEAD data-x=1 hidden>\n<meta charset=utf-8>",
                "<!DOCTYPE html>\n<html lang=\"en\" class='a>b'>\n  <HEAD data-x=1 hidden>",
            ),
            ("<head><body>", "<head>"),
            ("\n<html><head >x", "\n<html><head >"),
            (
                "<!DOCTYPE html PUBLIC \"-//W3C//DTD HTML 4.01//EN\"><html><head>",
                "<!DOCTYPE html PUBLIC \"-//W3C//DTD HTML 4.01//EN\"><html><head>",
            ),
        ] {
            assert_eq!(at(page), Some(head), "{page}");
        }
    }

    #[test]
    fn anything_less_plain_is_left_to_the_rewriter() {
        for page in [
            "<html><body><head>",
            "<!-- c --><html><head>",
            "<html><header>",
            "<html><head/>",
            "<html x=\"1><head>",
            "<html a\"b><head>",
            "<html a=><head>",
            "<html a=b\"c><head>",
            "<html><head",
            "<html><head a='x",
            "\u{feff}<html><head>",
            "<title>x</title><head>",
            "<html><html><head>",
            "",
        ] {
            assert_eq!(at(page), None, "{page}");
        }
    }

    #[test]
    fn a_page_naming_http_equiv_anywhere_is_left_to_the_rewriter() {
        for page in [
            "<html><head><meta http-equiv=\"Content-Security-Policy\" content=\"x\">",
            "<html><head><META HTTP-EQUIV=refresh content=1>",
            "<html><head></head><body><p>http-equiv",
            "<html><head><title>Http-Equiv</title>",
        ] {
            assert_eq!(at(page), None, "{page}");
        }
        assert!(at("<html><head><p>quite equiv http- q").is_some());
    }

    /// The rewriter, given the same pages, puts the script in the same place.
    #[tokio::test]
    async fn the_rewriter_agrees_byte_for_byte() {
        use http_body_util::BodyExt;
        let tag = "<script nonce=\"N\">S</script>";
        for page in [
            "<!doctype html><html><head><title>t</title></head><body>x</body></html>",
            "<!DOCTYPE html>\n<html lang=\"en\" class='a>b'>\n  <HEAD data-x=1 hidden>\n<meta charset=utf-8></head><body><p>hi",
            "<head><body>",
            "\n<html><head >x",
            "<!DOCTYPE html PUBLIC \"-//W3C//DTD HTML 4.01//EN\"><html><head><base href=/>",
        ] {
            let at = insertion_point(page.as_bytes()).expect(page);
            let plain = format!("{}{tag}{}", &page[..at], &page[at..]);
            let body = http_body_util::Full::new(bytes::Bytes::from(page));
            let rewritten = super::super::inject::inject(
                body,
                super::super::decode::Decoder::Identity,
                tag.into(),
                "N".into(),
            );
            let rewritten = rewritten.collect().await.unwrap().to_bytes();
            assert_eq!(plain.as_bytes(), &rewritten[..], "{page}");
        }
    }
}
