//! Source paths and excludes.
//!
//! A source path is an absolute, `/`-separated UTF-8 string (`/115/电影/Movie (2020)`),
//! whatever the source: the local source uses the OS path as text, cd2 its own paths.
//! Every comparison works on whole components, so `/115/Public` is never "under"
//! `/115/PublicX`, and no trailing slash is ever significant.

use crate::error::{Error, ErrorKind, Result};

/// Normalises a source path: absolute, single slashes, no trailing slash (but for `/`),
/// no `.` or `..` components.
pub fn normalize(path: &str) -> Result<String> {
    if !path.starts_with('/') {
        return Err(Error::new(
            ErrorKind::ConfigInvalid,
            "path must be absolute (start with /)",
        )
        .with("path", path));
    }
    let mut out = String::with_capacity(path.len());
    for part in path.split('/').filter(|p| !p.is_empty()) {
        if part == "." || part == ".." {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                "path may not contain `.` or `..` components",
            )
            .with("path", path));
        }
        out.push('/');
        out.push_str(part);
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// Joins a folder path and a child name.
pub fn join(parent: &str, name: &str) -> String {
    let mut out = String::with_capacity(parent.len() + name.len() + 1);
    out.push_str(parent);
    if !parent.ends_with('/') {
        out.push('/');
    }
    out.push_str(name);
    out
}

/// The parent folder of a path; `None` for `/`.
pub fn parent(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    match trimmed.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&trimmed[..i]),
        None => None,
    }
}

/// The last component of a path.
pub fn file_name(path: &str) -> &str {
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    trimmed.rsplit('/').next().unwrap_or(trimmed)
}

/// True when `path` is `ancestor` or lies below it, comparing whole components.
pub fn is_at_or_under(path: &str, ancestor: &str) -> bool {
    let ancestor = ancestor.strip_suffix('/').unwrap_or(ancestor);
    if ancestor.is_empty() {
        return path.starts_with('/');
    }
    let path = if path.len() > 1 {
        path.strip_suffix('/').unwrap_or(path)
    } else {
        path
    };
    match path.strip_prefix(ancestor) {
        Some("") => true,
        Some(rest) => rest.starts_with('/'),
        None => false,
    }
}

/// True when `path` lies strictly below `ancestor`.
pub fn is_under(path: &str, ancestor: &str) -> bool {
    is_at_or_under(path, ancestor) && !is_at_or_under(ancestor, path)
}

/// What a watch leaves out: name globs (`@eaDir`, `.*`, `*.part`) and absolute path
/// prefixes (`/115/电影/extras`), matched on whole components.
///
/// An excluded entry is dropped from its folder's listing before anything else looks
/// at it: it never changes a fingerprint, never causes a scan, and an excluded folder is
/// never listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Excludes {
    globs: Vec<String>,
    prefixes: Vec<String>,
}

impl Excludes {
    /// The patterns, globs first then path prefixes (normalised), as a config writes
    /// them back.
    pub fn patterns(&self) -> Vec<String> {
        self.globs.iter().chain(&self.prefixes).cloned().collect()
    }

    /// From the patterns of a watch. A pattern starting with `/` is a path prefix; any
    /// other is a glob on one name, where `*` matches any run of characters and `?`
    /// one character.
    pub fn new<I, S>(patterns: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut excludes = Excludes::default();
        for pattern in patterns {
            let pattern = pattern.as_ref();
            if pattern.is_empty() {
                return Err(Error::new(
                    ErrorKind::ConfigInvalid,
                    "an exclude pattern is empty",
                ));
            }
            if pattern.starts_with('/') {
                excludes.prefixes.push(normalize(pattern)?);
            } else if pattern.contains('/') {
                return Err(Error::new(
                    ErrorKind::ConfigInvalid,
                    "an exclude pattern is either a name glob (no `/`) or an absolute path",
                )
                .with("pattern", pattern));
            } else {
                excludes.globs.push(pattern.to_owned());
            }
        }
        Ok(excludes)
    }

    /// True when nothing is excluded.
    pub fn is_empty(&self) -> bool {
        self.globs.is_empty() && self.prefixes.is_empty()
    }

    /// True when the child `name` of folder `parent` is excluded.
    pub fn excludes(&self, parent: &str, name: &str) -> bool {
        if self.globs.iter().any(|g| glob_match(g, name)) {
            return true;
        }
        if self.prefixes.is_empty() {
            return false;
        }
        let path = join(parent, name);
        self.prefixes.iter().any(|p| is_at_or_under(&path, p))
    }
}

/// Matches `name` against a glob of `*` (any run) and `?` (one character); every other
/// character matches itself. Iterative with one backtrack point, so it is linear-ish
/// and can never blow the stack on a hostile pattern.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_not_prefixes() {
        assert!(is_at_or_under("/115/Public", "/115/Public"));
        assert!(is_at_or_under("/115/Public/a", "/115/Public/"));
        assert!(!is_at_or_under("/115/PublicX", "/115/Public"));
        assert!(is_at_or_under("/anything", "/"));
        assert!(is_under("/a/b", "/a"));
        assert!(!is_under("/a", "/a"));
        assert!(!is_under("/a", "/a/"));
    }

    #[test]
    fn parents_and_names() {
        assert_eq!(parent("/a/b"), Some("/a"));
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/"), None);
        assert_eq!(file_name("/a/b c"), "b c");
        assert_eq!(join("/", "x"), "/x");
        assert_eq!(join("/a", "x"), "/a/x");
    }

    #[test]
    fn normalizing() {
        assert_eq!(normalize("//a///b/").unwrap(), "/a/b");
        assert_eq!(normalize("/").unwrap(), "/");
        assert!(normalize("a/b").is_err());
        assert!(normalize("/a/../b").is_err());
    }

    #[test]
    fn globs() {
        assert!(glob_match("*.part", "movie.mkv.part"));
        assert!(!glob_match("*.part", "movie.mkv"));
        assert!(glob_match(".*", ".DS_Store"));
        assert!(!glob_match(".*", "a.b"));
        assert!(glob_match("@eaDir", "@eaDir"));
        assert!(glob_match("a?c", "abc"));
        assert!(glob_match("*a*b*", "xxaxxbxx"));
        assert!(glob_match("电影*", "电影 2020"));
        assert!(!glob_match(&"*a".repeat(50), &"a".repeat(40)));
    }

    #[test]
    fn excludes_by_glob_and_prefix() {
        let ex = Excludes::new(["@eaDir", ".*", "*.part", "/w/extras"]).unwrap();
        assert!(ex.excludes("/w/x", "@eaDir"));
        assert!(ex.excludes("/w", ".hidden"));
        assert!(ex.excludes("/w", "extras"));
        assert!(!ex.excludes("/w", "extras2"));
        assert!(!ex.excludes("/w", "film.mkv"));
        assert!(Excludes::new(["a/b"]).is_err());
        assert!(Excludes::new([""]).is_err());
    }
}
