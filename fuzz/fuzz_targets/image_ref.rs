//! Image references (`image::ImageRef::parse`) and the `--allowed-image`
//! allowlist (`image::ImagePolicy`).
//!
//! Invariants: never a panic; everything accepted is a reference Docker's
//! own grammar accepts (distribution's anchored reference regexp, with the
//! domain rule of its normalization), so what reaches the engine is never
//! something it reads differently; the normalized form parses again to
//! itself (where it still fits the length limit); a policy listing a
//! reference, as given or normalized, allows it; any pattern either
//! compiles or is refused with an error.
#![no_main]

use std::sync::OnceLock;

use claude_studio::image::{ImagePolicy, ImageRef};
use libfuzzer_sys::fuzz_target;
use regex::Regex;

/// The input, as text: the reference, then an `--allowed-image` pattern
/// on the next line.
struct Input<'a> {
    reference: &'a str,
    pattern: &'a str,
}

/// github.com/distribution/reference `anchoredReferenceRegexp`.
fn docker() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| {
        let alnum = "[a-z0-9]+";
        let sep = "(?:[._]|__|[-]+)";
        let path_component = format!("{alnum}(?:{sep}{alnum})*");
        let domain_component = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
        let domain_name = format!("{domain_component}(?:\\.{domain_component})*");
        let ipv6 = r"\[(?:[a-fA-F0-9:]+)\]";
        let host = format!("(?:{domain_name}|{ipv6})");
        let domain = format!("{host}(?::[0-9]+)?");
        let name = format!("(?:{domain}/)?{path_component}(?:/{path_component})*");
        let tag = "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}";
        let digest = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][[:xdigit:]]{32,}";
        Regex::new(&format!("^({name})(?::({tag}))?(?:@({digest}))?$")).unwrap()
    })
}

/// What Docker takes for the registry: a first component with `.` or `:`,
/// or `localhost` (distribution's `splitDockerDomain`). The rest is the
/// repository path, lower-case only.
fn docker_accepts(s: &str) -> bool {
    let Some(c) = docker().captures(s) else {
        return false;
    };
    let name = c.get(1).unwrap().as_str();
    let path = match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => rest,
        _ => name,
    };
    name.len() <= 255
        && path
            .split('/')
            .all(|p| !p.is_empty() && !p.bytes().any(|b| b.is_ascii_uppercase()))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (reference, pattern) = text.split_once('\n').unwrap_or((text, ""));
    let input = Input { reference, pattern };
    let s = input.reference;
    let policy = ImagePolicy::new(&[input.pattern.to_string()]);
    let Ok(r) = ImageRef::parse(s) else {
        return;
    };
    assert_eq!(r.raw, s);
    assert!(docker_accepts(s), "{s:?} is not a reference Docker takes");
    assert!(
        docker_accepts(&r.normalized),
        "{:?} is not a reference Docker takes",
        r.normalized
    );
    if r.normalized != r.raw {
        assert_eq!(r.normalized, format!("{s}:latest"));
    }
    if r.normalized.len() <= 255 {
        let again = ImageRef::parse(&r.normalized).expect("the normalized form parses");
        assert_eq!(again.normalized, r.normalized);
    }
    for listed in [&r.raw, &r.normalized] {
        let p = ImagePolicy::new(&[globset::escape(listed)]).expect("an escaped literal compiles");
        assert!(p.allows(&r), "{listed:?} does not allow itself");
    }
    if let Ok(p) = policy {
        let _ = p.allows(&r);
    }
});
