//! `workspaceDir` validation: the host directory a client asks to mount.
//!
//! A path is accepted only if, after every symlink is resolved, it is an
//! existing directory inside one of the configured workspace roots. The
//! resolved path is what gets mounted, so a symlink swapped in after the check
//! cannot redirect the mount. Messages quote only what the client sent.

use std::path::{Path, PathBuf};

use crate::error::ApiError;

const MAX_PATH_LEN: usize = 4096;

/// The configured roots, resolved once at start-up.
#[derive(Debug, Clone, Default)]
pub struct WorkspaceRoots {
    roots: Vec<PathBuf>,
}

impl WorkspaceRoots {
    /// Resolves each root; a root that does not exist is an error at start-up.
    pub fn new(roots: &[PathBuf]) -> Result<WorkspaceRoots, String> {
        let roots = roots
            .iter()
            .map(|r| {
                std::fs::canonicalize(r)
                    .map_err(|e| format!("workspace root {} cannot be used: {e}", r.display()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(WorkspaceRoots { roots })
    }

    /// Returns the resolved directory to mount for the client's `requested` path.
    pub fn resolve(&self, requested: &str) -> Result<PathBuf, ApiError> {
        let bad = |why: &str| {
            ApiError::validation(format!(
                "Invalid workspaceDir '{}': {why}",
                shorten(requested)
            ))
        };
        if requested.is_empty() {
            return Err(bad("must not be empty"));
        }
        if requested.len() > MAX_PATH_LEN {
            return Err(bad("path is too long"));
        }
        if requested.contains('\0') {
            return Err(bad("contains a NUL character"));
        }
        let path = Path::new(requested);
        if !path.is_absolute() {
            return Err(bad("must be an absolute path"));
        }
        if self.roots.is_empty() {
            return Err(bad(
                "no workspace root is configured on this server (--workspace-root)",
            ));
        }
        let resolved =
            std::fs::canonicalize(path).map_err(|_| bad("does not exist or is not accessible"))?;
        if !self.roots.iter().any(|root| resolved.starts_with(root)) {
            return Err(bad("is outside the allowed workspace roots"));
        }
        if !resolved.is_dir() {
            return Err(bad("is not a directory"));
        }
        Ok(resolved)
    }
}

fn shorten(s: &str) -> String {
    if s.chars().count() > 200 {
        let head: String = s.chars().take(200).collect();
        format!("{head}…")
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Tree(PathBuf);
    impl Drop for Tree {
        fn drop(&mut self) {
            std::fs::remove_dir_all(&self.0).ok();
        }
    }

    fn tree(name: &str) -> (Tree, PathBuf, PathBuf) {
        let base = std::env::temp_dir().join(format!("studio-ws-{name}-{}", std::process::id()));
        let root = base.join("root");
        let outside = base.join("outside");
        std::fs::create_dir_all(root.join("proj")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(root.join("file.txt"), "x").unwrap();
        (Tree(base), root, outside)
    }

    #[test]
    fn accepts_a_directory_inside_a_root() {
        let (_t, root, _) = tree("ok");
        let roots = WorkspaceRoots::new(std::slice::from_ref(&root)).unwrap();
        let got = roots.resolve(root.join("proj").to_str().unwrap()).unwrap();
        assert_eq!(got, std::fs::canonicalize(root.join("proj")).unwrap());
        assert!(roots.resolve(root.to_str().unwrap()).is_ok());
    }

    #[test]
    fn rejects_traversal_relative_missing_and_files() {
        let (_t, root, _) = tree("bad");
        let roots = WorkspaceRoots::new(std::slice::from_ref(&root)).unwrap();
        let traversal = format!("{}/proj/../../outside", root.display());
        for (p, why) in [
            (traversal.as_str(), "outside"),
            ("relative/path", "absolute"),
            ("/etc", "outside"),
            ("", "empty"),
        ] {
            let e = roots.resolve(p).unwrap_err();
            assert_eq!(e.name(), "ValidationError");
            assert!(e.to_string().contains(why), "{p}: {e}");
        }
        let missing = root.join("nope");
        assert!(roots
            .resolve(missing.to_str().unwrap())
            .unwrap_err()
            .to_string()
            .contains("does not exist"));
        let file = root.join("file.txt");
        assert!(roots
            .resolve(file.to_str().unwrap())
            .unwrap_err()
            .to_string()
            .contains("not a directory"));
    }

    #[test]
    fn rejects_symlink_escapes() {
        let (_t, root, outside) = tree("link");
        std::os::unix::fs::symlink(&outside, root.join("escape")).unwrap();
        let roots = WorkspaceRoots::new(std::slice::from_ref(&root)).unwrap();
        let e = roots
            .resolve(root.join("escape").to_str().unwrap())
            .unwrap_err();
        assert!(e.to_string().contains("outside"), "{e}");
        // The message quotes the client's path, never the resolved host path.
        assert!(!e.to_string().contains("/outside"), "{e}");
    }

    #[test]
    fn a_root_prefix_is_not_a_root() {
        let (_t, root, _) = tree("prefix");
        let sibling = PathBuf::from(format!("{}-evil", root.display()));
        std::fs::create_dir_all(&sibling).unwrap();
        let roots = WorkspaceRoots::new(std::slice::from_ref(&root)).unwrap();
        assert!(roots.resolve(sibling.to_str().unwrap()).is_err());
        std::fs::remove_dir_all(sibling).ok();
    }

    #[test]
    fn no_roots_means_no_workspace_dirs() {
        let roots = WorkspaceRoots::new(&[]).unwrap();
        assert!(roots
            .resolve("/tmp")
            .unwrap_err()
            .to_string()
            .contains("no workspace root"));
    }
}
