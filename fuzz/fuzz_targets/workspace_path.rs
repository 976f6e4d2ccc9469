//! Paths clients name: a session's files (`runtime::files::locate`, and the
//! temporary names of writes) and the host `workspaceDir`
//! (`workspace::WorkspaceRoots::resolve`).
//!
//! `locate` is pure. `resolve` reads the filesystem (it resolves symlinks),
//! so it runs against a small tree this target makes once under the temp
//! directory: a root with a directory, a file, a symlink to a directory
//! inside and one to a directory outside; it only ever reads it.
//!
//! Invariants: an accepted path's place is one of `PLACES` and the rest has
//! no `..`, `.` or empty segment, and names the same thing again; a path
//! with a `..` segment is refused; a temporary name fits in 255 bytes and
//! leads back to its target; a resolved workspaceDir is a canonical
//! directory inside the root, never outside, and a refusal quotes only
//! what the client sent.
#![no_main]

use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use claude_studio::runtime::files::{locate, target_of_temp, temp_is_for, temp_name, PLACES};
use claude_studio::workspace::WorkspaceRoots;
use libfuzzer_sys::fuzz_target;

/// The input, as text: the path, and on the next line options: `abs`
/// (the path is the whole workspaceDir; else it is under the root), `new`
/// (the temporary name of a new file).
struct Input<'a> {
    under_root: bool,
    new: bool,
    path: &'a str,
}

struct Tree {
    root: PathBuf,
    outside: PathBuf,
    roots: WorkspaceRoots,
}

fn tree() -> &'static Tree {
    static T: OnceLock<Tree> = OnceLock::new();
    T.get_or_init(|| {
        let base = std::env::temp_dir().join("claude-studio-fuzz-workspace");
        let root = base.join("root");
        let outside = base.join("outside");
        std::fs::create_dir_all(root.join("proj/sub")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(root.join("file.txt"), "x").unwrap();
        for (link, to) in [("in", root.join("proj")), ("out", outside.clone())] {
            let at = root.join(link);
            if std::fs::symlink_metadata(&at).is_err() {
                std::os::unix::fs::symlink(to, at).unwrap();
            }
        }
        let root = std::fs::canonicalize(root).unwrap();
        let outside = std::fs::canonicalize(outside).unwrap();
        let roots = WorkspaceRoots::new(std::slice::from_ref(&root)).unwrap();
        Tree {
            root,
            outside,
            roots,
        }
    })
}

fn check_locate(path: &str) {
    let has_dotdot = path.split('/').any(|s| s == "..");
    let Ok((place, rest)) = locate(path) else {
        return;
    };
    assert!(!has_dotdot, "{path:?} has '..' yet is accepted");
    assert!(PLACES.contains(&place), "{place}");
    assert!(!rest.starts_with('/'));
    if !rest.is_empty() {
        assert!(
            rest.split('/')
                .all(|s| !s.is_empty() && s != "." && s != ".."),
            "{path:?} -> {rest:?}"
        );
    }
    assert!(!rest.contains('\0'));
    let again = if rest.is_empty() {
        place.to_string()
    } else {
        format!("{place}/{rest}")
    };
    let (p2, r2) = locate(&again).expect("the located path is valid");
    assert_eq!((p2, r2.as_str()), (place, rest.as_str()));
}

fn check_temp_name(name: &str, new: bool) {
    if name.is_empty() || name.contains('/') || name.len() > 255 {
        return;
    }
    let t = temp_name(name, new);
    assert!(t.len() <= 255, "{} bytes", t.len());
    let (kept, is_new) = target_of_temp(&t).expect("a temporary name is recognised");
    assert_eq!(is_new, new);
    assert!(temp_is_for(kept, name), "{t:?} is not for {name:?}");
}

fn check_resolve(t: &Tree, requested: &str) {
    match t.roots.resolve(requested) {
        Ok(dir) => {
            assert!(dir.starts_with(&t.root), "{requested:?} -> {dir:?}");
            assert!(!dir.starts_with(&t.outside));
            assert!(dir.is_dir());
            assert!(dir.is_absolute());
            assert!(
                dir.components()
                    .all(|c| matches!(c, Component::RootDir | Component::Normal(_))),
                "{dir:?} is not canonical"
            );
            assert_eq!(std::fs::canonicalize(&dir).unwrap(), dir);
        }
        Err(e) => {
            assert_eq!(e.name(), "ValidationError");
            let msg = e.to_string();
            assert!(msg.starts_with("Invalid workspaceDir '"), "{msg}");
            let outside = t.outside.to_string_lossy();
            assert!(
                !msg.contains(outside.as_ref()) || requested.contains(outside.as_ref()),
                "the refusal shows a resolved path: {msg}"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (path, options) = text.split_once('\n').unwrap_or((text, ""));
    let input = Input {
        under_root: !options.split_ascii_whitespace().any(|o| o == "abs"),
        new: options.split_ascii_whitespace().any(|o| o == "new"),
        path,
    };
    check_locate(input.path);
    check_temp_name(input.path, input.new);
    let t = tree();
    let requested = if input.under_root {
        format!("{}/{}", t.root.display(), input.path)
    } else {
        input.path.to_string()
    };
    check_resolve(t, &requested);
    let _ = Path::new(&requested);
});
