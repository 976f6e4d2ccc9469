//! Content-Security-Policy amendment: an upstream policy (header or
//! `<meta http-equiv>`) is changed just enough for the injected console
//! script to run (its nonce) and to report to the server (`'self'` for
//! fetch). Nothing in the policy is loosened beyond that.

/// Amends every policy in `value` (a header may carry several, comma
/// separated) so a `<script nonce="NONCE">` runs and may fetch same-origin.
pub fn amend(value: &str, nonce: &str) -> String {
    value
        .split(',')
        .map(|p| amend_policy(p, nonce))
        .collect::<Vec<_>>()
        .join(", ")
}

struct Directive {
    name: String,
    sources: Vec<String>,
}

fn parse(policy: &str) -> Vec<Directive> {
    policy
        .split(';')
        .filter_map(|d| {
            let mut tokens = d.split_ascii_whitespace();
            let name = tokens.next()?.to_string();
            Some(Directive {
                name,
                sources: tokens.map(String::from).collect(),
            })
        })
        .collect()
}

/// The first directive named `name`: only the first of duplicates counts.
fn find(dirs: &[Directive], name: &str) -> Option<usize> {
    dirs.iter().position(|d| d.name.eq_ignore_ascii_case(name))
}

fn has(sources: &[String], token: &str) -> bool {
    sources.iter().any(|s| s.eq_ignore_ascii_case(token))
}

/// A script source list that lets our nonce'd script run, or `None` when it
/// already does. `'unsafe-inline'` without any nonce, hash or
/// `'strict-dynamic'` already allows inline scripts; adding a nonce there
/// would switch `'unsafe-inline'` off and break the page's own scripts.
fn script_sources(sources: &[String], nonce: &str) -> Option<Vec<String>> {
    let keyed = sources.iter().any(|s| {
        let l = s.to_ascii_lowercase();
        l.starts_with("'nonce-")
            || l.starts_with("'sha256-")
            || l.starts_with("'sha384-")
            || l.starts_with("'sha512-")
    });
    if has(sources, "'unsafe-inline'") && !keyed && !has(sources, "'strict-dynamic'") {
        return None;
    }
    Some(adding(sources, format!("'nonce-{nonce}'")))
}

/// A connect source list that allows same-origin requests, or `None` when
/// it already does.
fn connect_sources(sources: &[String]) -> Option<Vec<String>> {
    if has(sources, "'self'") || has(sources, "*") {
        return None;
    }
    Some(adding(sources, "'self'".into()))
}

/// `sources` plus `extra`; a `'none'` goes, since the list is no longer empty.
fn adding(sources: &[String], extra: String) -> Vec<String> {
    let mut out: Vec<String> = sources
        .iter()
        .filter(|s| !s.eq_ignore_ascii_case("'none'"))
        .cloned()
        .collect();
    out.push(extra);
    out
}

fn amend_policy(policy: &str, nonce: &str) -> String {
    let mut dirs = parse(policy);
    if dirs.is_empty() {
        return policy.trim().to_string();
    }
    let default = find(&dirs, "default-src").map(|i| dirs[i].sources.clone());

    // Script elements are governed by script-src-elem, else script-src,
    // else default-src. A missing script-src is added as a copy of
    // default-src, so every other resource type keeps default-src as is.
    for name in ["script-src-elem", "script-src"] {
        if let Some(i) = find(&dirs, name) {
            if let Some(s) = script_sources(&dirs[i].sources, nonce) {
                dirs[i].sources = s;
            }
        }
    }
    if find(&dirs, "script-src").is_none() {
        if let Some(s) = default.as_deref().and_then(|d| script_sources(d, nonce)) {
            dirs.push(Directive {
                name: "script-src".into(),
                sources: s,
            });
        }
    }

    match find(&dirs, "connect-src") {
        Some(i) => {
            if let Some(s) = connect_sources(&dirs[i].sources) {
                dirs[i].sources = s;
            }
        }
        None => {
            if let Some(s) = default.as_deref().and_then(connect_sources) {
                dirs.push(Directive {
                    name: "connect-src".into(),
                    sources: s,
                });
            }
        }
    }

    dirs.iter()
        .map(|d| {
            if d.sources.is_empty() {
                d.name.clone()
            } else {
                format!("{} {}", d.name, d.sources.join(" "))
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::amend;

    const N: &str = "abc123";

    #[test]
    fn script_src_gets_the_nonce_and_nothing_else_changes() {
        assert_eq!(
            amend("script-src 'self' https://cdn.example; img-src *", N),
            "script-src 'self' https://cdn.example 'nonce-abc123'; img-src *"
        );
    }

    #[test]
    fn none_is_replaced_not_kept_beside_the_nonce() {
        assert_eq!(amend("script-src 'none'", N), "script-src 'nonce-abc123'");
        assert_eq!(
            amend("connect-src 'none'; script-src 'self'", N),
            "connect-src 'self'; script-src 'self' 'nonce-abc123'"
        );
    }

    #[test]
    fn default_src_only_is_copied_into_new_script_and_connect_directives() {
        assert_eq!(
            amend("default-src 'none'", N),
            "default-src 'none'; script-src 'nonce-abc123'; connect-src 'self'"
        );
        // default-src with 'self' already allows the report; only script-src is added.
        assert_eq!(
            amend("default-src 'self' https://x.example", N),
            "default-src 'self' https://x.example; script-src 'self' https://x.example 'nonce-abc123'"
        );
    }

    #[test]
    fn unsafe_inline_is_left_alone_since_a_nonce_would_disable_it() {
        let p = "script-src 'self' 'unsafe-inline'; connect-src 'self'";
        assert_eq!(amend(p, N), p);
        let p = "default-src 'self' 'unsafe-inline'";
        assert_eq!(amend(p, N), p);
    }

    #[test]
    fn unsafe_inline_with_a_hash_or_nonce_or_strict_dynamic_still_needs_ours() {
        assert_eq!(
            amend("script-src 'unsafe-inline' 'sha256-AAAA'", N),
            "script-src 'unsafe-inline' 'sha256-AAAA' 'nonce-abc123'"
        );
        assert_eq!(
            amend("script-src 'nonce-theirs' 'unsafe-inline'", N),
            "script-src 'nonce-theirs' 'unsafe-inline' 'nonce-abc123'"
        );
        assert_eq!(
            amend("script-src 'strict-dynamic' 'unsafe-inline' https:", N),
            "script-src 'strict-dynamic' 'unsafe-inline' https: 'nonce-abc123'"
        );
    }

    #[test]
    fn script_src_elem_is_amended_too() {
        assert_eq!(
            amend("script-src-elem 'self'; script-src 'self'", N),
            "script-src-elem 'self' 'nonce-abc123'; script-src 'self' 'nonce-abc123'"
        );
    }

    #[test]
    fn connect_src_gets_self_unless_it_allows_it() {
        assert_eq!(
            amend("connect-src https://api.example", N),
            "connect-src https://api.example 'self'"
        );
        assert_eq!(amend("connect-src *", N), "connect-src *");
        assert_eq!(amend("connect-src 'SELF'", N), "connect-src 'SELF'");
    }

    #[test]
    fn policies_without_script_or_connect_restrictions_are_unchanged() {
        let p = "img-src 'self'; frame-ancestors 'none'; upgrade-insecure-requests";
        assert_eq!(amend(p, N), p);
        assert_eq!(amend("sandbox allow-forms", N), "sandbox allow-forms");
    }

    #[test]
    fn directive_names_are_case_insensitive_and_only_the_first_counts() {
        assert_eq!(
            amend("SCRIPT-SRC 'self'; script-src 'none'", N),
            "SCRIPT-SRC 'self' 'nonce-abc123'; script-src 'none'"
        );
        assert_eq!(
            amend("Default-Src 'none'", N),
            "Default-Src 'none'; script-src 'nonce-abc123'; connect-src 'self'"
        );
    }

    #[test]
    fn every_policy_of_a_list_is_amended() {
        assert_eq!(
            amend("script-src 'self', default-src 'none'", N),
            "script-src 'self' 'nonce-abc123', default-src 'none'; script-src 'nonce-abc123'; connect-src 'self'"
        );
    }

    #[test]
    fn whitespace_and_empty_directives_are_tolerated() {
        assert_eq!(
            amend("  script-src   'self' ;; ", N),
            "script-src 'self' 'nonce-abc123'"
        );
        assert_eq!(amend("", N), "");
    }

    #[test]
    fn other_fetch_directives_keep_falling_back_to_default_src() {
        // style-src, img-src … still use default-src exactly as before.
        let out = amend("default-src 'self' 'unsafe-inline'; script-src 'self'", N);
        assert_eq!(
            out,
            "default-src 'self' 'unsafe-inline'; script-src 'self' 'nonce-abc123'"
        );
    }
}
