//! Image references: syntax check and the `--allowed-image` allowlist.
//!
//! The grammar is Docker's reference grammar, restricted to what a client can
//! usefully ask for: `[registry[:port]/]path[:tag][@sha256:hex]`.

use globset::{Glob, GlobSet, GlobSetBuilder};

/// A syntactically valid image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// The reference as the client gave it.
    pub raw: String,
    /// The reference with `:latest` added when it has neither tag nor digest.
    pub normalized: String,
}

const MAX_LEN: usize = 255;

fn is_path_component(c: &str) -> bool {
    // [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let ch = b[i];
        if ch.is_ascii_lowercase() || ch.is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && matches!(b[i], b'.' | b'_' | b'-') {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok || sep.is_empty() {
            return false;
        }
    }
    true
}

fn is_domain(d: &str) -> bool {
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (d, None),
    };
    if let Some(p) = port {
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn is_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'))
}

fn is_digest(d: &str) -> bool {
    match d.split_once(':') {
        Some(("sha256", hex)) => {
            hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        }
        _ => false,
    }
}

impl ImageRef {
    pub fn parse(s: &str) -> Result<ImageRef, String> {
        if s.is_empty() {
            return Err("image must not be empty".into());
        }
        if s.len() > MAX_LEN {
            return Err(format!(
                "image reference is longer than {MAX_LEN} characters"
            ));
        }
        let invalid = || format!("invalid image reference '{s}'");
        let (name_tag, digest) = match s.split_once('@') {
            Some((n, d)) => (n, Some(d)),
            None => (s, None),
        };
        if let Some(d) = digest {
            if !is_digest(d) {
                return Err(invalid());
            }
        }
        // A ':' after the last '/' starts the tag; one before it is a registry port.
        let last_slash = name_tag.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match name_tag[last_slash..].find(':') {
            Some(i) => (
                &name_tag[..last_slash + i],
                Some(&name_tag[last_slash + i + 1..]),
            ),
            None => (name_tag, None),
        };
        if let Some(t) = tag {
            if !is_tag(t) {
                return Err(invalid());
            }
        }
        let mut parts: Vec<&str> = name.split('/').collect();
        if parts.len() > 1 {
            let first = parts[0];
            if first.contains('.') || first.contains(':') || first == "localhost" {
                if !is_domain(first) {
                    return Err(invalid());
                }
                parts.remove(0);
            }
        }
        if parts.is_empty() || !parts.iter().all(|p| is_path_component(p)) {
            return Err(invalid());
        }
        let normalized = if tag.is_none() && digest.is_none() {
            format!("{s}:latest")
        } else {
            s.to_string()
        };
        Ok(ImageRef {
            raw: s.to_string(),
            normalized,
        })
    }
}

impl ImageRef {
    /// The reference as given, with `:latest` made explicit, and for Docker
    /// Hub images their short and fully qualified forms.
    fn spellings(&self) -> Vec<String> {
        let mut v = vec![self.raw.clone(), self.normalized.clone()];
        let n = &self.normalized;
        let hub = ["docker.io/", "index.docker.io/", "registry-1.docker.io/"]
            .iter()
            .find_map(|d| n.strip_prefix(d));
        let has_domain = n.split_once('/').is_some_and(|(first, _)| {
            first.contains('.') || first.contains(':') || first == "localhost"
        });
        let short = match hub {
            Some(rest) => rest.strip_prefix("library/").unwrap_or(rest).to_string(),
            None if !has_domain => n.strip_prefix("library/").unwrap_or(n).to_string(),
            None => return v,
        };
        let full = if short.contains('/') {
            format!("docker.io/{short}")
        } else {
            format!("docker.io/library/{short}")
        };
        v.push(short);
        v.push(full);
        v
    }
}

/// The `--allowed-image` globs. Empty means every image is allowed.
#[derive(Debug, Clone)]
pub struct ImagePolicy {
    set: Option<GlobSet>,
}

impl ImagePolicy {
    pub fn new(patterns: &[String]) -> Result<ImagePolicy, String> {
        if patterns.is_empty() {
            return Ok(ImagePolicy { set: None });
        }
        let mut b = GlobSetBuilder::new();
        for p in patterns {
            let glob =
                Glob::new(p).map_err(|e| format!("invalid --allowed-image pattern {p:?}: {e}"))?;
            b.add(glob);
        }
        let set = b.build().map_err(|e| e.to_string())?;
        Ok(ImagePolicy { set: Some(set) })
    }

    /// Whether any spelling of the image matches: as given, with its
    /// implied `:latest`, and in Docker Hub's short (`node:20`) and full
    /// (`docker.io/library/node:20`) forms, which name the same image.
    pub fn allows(&self, image: &ImageRef) -> bool {
        match &self.set {
            None => true,
            Some(set) => image.spellings().iter().any(|s| set.is_match(s)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_common_references() {
        for ok in [
            "node:20-alpine",
            "busybox",
            "library/ubuntu:22.04",
            "ghcr.io/org/app:v1.2.3",
            "localhost:5000/my_app__x:dev",
            "registry.example.com:443/a/b/c",
            "alpine@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(ImageRef::parse(ok).is_ok(), "{ok}");
        }
        assert_eq!(
            ImageRef::parse("busybox").unwrap().normalized,
            "busybox:latest"
        );
        assert_eq!(ImageRef::parse("node:20").unwrap().normalized, "node:20");
    }

    #[test]
    fn rejects_malformed_references() {
        for bad in [
            "",
            "UPPER:case",
            "node:",
            ":tag",
            "a//b",
            "-lead",
            "node:20 alpine",
            "node;rm -rf /",
            "../etc/passwd",
            "alpine@sha256:short",
            "node:-bad",
            &"a".repeat(300),
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn allowlist_globs_match_raw_or_normalized() {
        let p = ImagePolicy::new(&["node:*".into(), "busybox:latest".into()]).unwrap();
        assert!(p.allows(&ImageRef::parse("node:20-alpine").unwrap()));
        assert!(p.allows(&ImageRef::parse("busybox").unwrap()));
        assert!(!p.allows(&ImageRef::parse("alpine:3").unwrap()));
        assert!(ImagePolicy::new(&[])
            .unwrap()
            .allows(&ImageRef::parse("anything").unwrap()));
    }

    #[test]
    fn docker_hub_images_match_in_every_spelling_and_nothing_else_does() {
        let short = ImagePolicy::new(&["node:*".into(), "acme/*".into()]).unwrap();
        let full = ImagePolicy::new(&["docker.io/library/node:*".into()]).unwrap();
        for same in [
            "node:20",
            "library/node:20",
            "docker.io/library/node:20",
            "index.docker.io/library/node:20",
            "docker.io/node:20",
        ] {
            let r = ImageRef::parse(same).unwrap();
            assert!(short.allows(&r), "{same}");
            assert!(full.allows(&r), "{same}");
        }
        assert!(short.allows(&ImageRef::parse("docker.io/acme/app:1").unwrap()));
        for other in [
            "evil.example/node:20",
            "localhost:5000/node:20",
            "ghcr.io/library/node:20",
            "nodejs:20",
        ] {
            let r = ImageRef::parse(other).unwrap();
            assert!(!short.allows(&r), "{other}");
            assert!(!full.allows(&r), "{other}");
        }
    }
}
