//! Path mapping from source paths to the paths a target sees, and whole-component
//! comparisons in the target's separator style.
//!
//! A target may run on another machine with another mount point, or on Windows
//! (`D:\Media\TV`). Rules are ordered `from → to` pairs; a rule applies when `from` is
//! the path or one of its ancestors on whole components; the longest applying `from`
//! wins (ties: the first). The rest of the path is appended in the style of `to`.

use crate::error::{Error, ErrorKind, Result};
use crate::path;
use serde::{Deserialize, Serialize};

/// The separator convention of a target path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathStyle {
    /// `/`-separated, case-sensitive.
    Posix,
    /// `\`-separated (`D:\Media`, `\\server\share`), compared case-insensitively as
    /// Windows does.
    Windows,
}

impl PathStyle {
    /// The style a path is written in: Windows when it starts with a drive letter or
    /// `\\`, or contains a backslash.
    pub fn of(path: &str) -> Self {
        let b = path.as_bytes();
        let drive = b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':';
        if drive || path.starts_with("\\\\") || path.contains('\\') {
            PathStyle::Windows
        } else {
            PathStyle::Posix
        }
    }

    /// The separator character.
    pub fn separator(self) -> char {
        match self {
            PathStyle::Posix => '/',
            PathStyle::Windows => '\\',
        }
    }
}

/// One mapping rule, in the shape of `pps.toml`: `{ from = "/115", to = "/mnt/115" }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingRule {
    /// A source path prefix (absolute, `/`-separated).
    pub from: String,
    /// What the target calls that folder (POSIX or Windows style).
    pub to: String,
}

/// Ordered mapping rules of one target. With no rules, paths pass unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathMapping {
    rules: Vec<(String, String)>,
}

impl PathMapping {
    /// Validates and normalises the rules. An empty or relative `from`, or an empty
    /// `to`, is a [`ConfigInvalid`](ErrorKind::ConfigInvalid) error naming the rule.
    pub fn new(rules: impl IntoIterator<Item = MappingRule>) -> Result<Self> {
        let mut out = Vec::new();
        for (i, rule) in rules.into_iter().enumerate() {
            let from = path::normalize(&rule.from).map_err(|e| {
                Error::new(ErrorKind::ConfigInvalid, e.message().to_owned())
                    .with("rule", format!("path_mapping[{i}].from"))
                    .with("value", rule.from.clone())
            })?;
            let to = rule.to.trim();
            if to.is_empty() {
                return Err(
                    Error::new(ErrorKind::ConfigInvalid, "`to` may not be empty")
                        .with("rule", format!("path_mapping[{i}].to")),
                );
            }
            out.push((from, trim_trailing_separator(to).to_owned()));
        }
        Ok(PathMapping { rules: out })
    }

    /// The rules in force (normalised), as `(from, to)`.
    pub fn rules(&self) -> impl Iterator<Item = (&str, &str)> {
        self.rules.iter().map(|(f, t)| (f.as_str(), t.as_str()))
    }

    /// True when there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Maps a source path; `None` when rules exist and none applies (the target cannot
    /// see that path).
    pub fn map(&self, source_path: &str) -> Option<String> {
        if self.rules.is_empty() {
            return Some(source_path.to_owned());
        }
        let mut best: Option<&(String, String)> = None;
        for rule in &self.rules {
            if path::is_at_or_under(source_path, &rule.0)
                && best.is_none_or(|b| rule.0.len() > b.0.len())
            {
                best = Some(rule);
            }
        }
        let (from, to) = best?;
        let rest = if from == "/" {
            source_path.trim_start_matches('/')
        } else {
            source_path[from.len()..].trim_start_matches('/')
        };
        if rest.is_empty() {
            return Some(to.clone());
        }
        let style = PathStyle::of(to);
        let sep = style.separator();
        let mut out = String::with_capacity(to.len() + rest.len() + 1);
        out.push_str(to);
        if !out.ends_with(sep) {
            out.push(sep);
        }
        match style {
            PathStyle::Posix => out.push_str(rest),
            PathStyle::Windows => out.extend(rest.chars().map(|c| if c == '/' { '\\' } else { c })),
        }
        Some(out)
    }
}

fn trim_trailing_separator(p: &str) -> &str {
    // Keep a root as it is: "/", "D:\", "\\server\share\" stay meaningful.
    let t = p.trim_end_matches(['/', '\\']);
    if t.is_empty() {
        &p[..1]
    } else if t.len() == 2 && t.as_bytes()[1] == b':' {
        &p[..3.min(p.len())]
    } else {
        t
    }
}

fn components(p: &str, style: PathStyle) -> impl Iterator<Item = &str> {
    let seps: &[char] = match style {
        PathStyle::Posix => &['/'],
        // Windows accepts both separators.
        PathStyle::Windows => &['\\', '/'],
    };
    p.split(seps).filter(|c| !c.is_empty())
}

/// True when target path `path` is `location` or below it, on whole components, in the
/// style of `location` (Windows paths compare case-insensitively).
pub fn target_contains(location: &str, path: &str) -> bool {
    let style = PathStyle::of(location);
    let mut loc = components(location, style);
    let mut p = components(path, style);
    loop {
        match (loc.next(), p.next()) {
            (None, _) => return true,
            (Some(_), None) => return false,
            (Some(a), Some(b)) => {
                let same = match style {
                    PathStyle::Posix => a == b,
                    PathStyle::Windows => a.to_lowercase() == b.to_lowercase(),
                };
                if !same {
                    return false;
                }
            }
        }
    }
}

/// True when two target paths name the same folder (ignoring trailing separators, and
/// case on Windows).
pub fn target_same(a: &str, b: &str) -> bool {
    target_contains(a, b) && target_contains(b, a)
}

/// The parent of a target path in its own style; `None` at a root.
pub fn target_parent(path: &str) -> Option<String> {
    let style = PathStyle::of(path);
    let sep = style.separator();
    let trimmed = trim_trailing_separator(path);
    let idx = trimmed.rfind(['/', '\\'])?;
    let head = &trimmed[..idx];
    if head.is_empty() {
        return if trimmed.len() > 1 {
            Some(sep.to_string())
        } else {
            None
        };
    }
    if head.len() == 2 && head.as_bytes()[1] == b':' {
        // "D:\x" -> "D:\"; "D:\" itself has no parent.
        return if trimmed.len() > 3 {
            Some(format!("{head}{sep}"))
        } else {
            None
        };
    }
    if style == PathStyle::Windows && head == "\\" {
        return None;
    }
    Some(head.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(rules: &[(&str, &str)]) -> PathMapping {
        PathMapping::new(rules.iter().map(|(f, t)| MappingRule {
            from: (*f).into(),
            to: (*t).into(),
        }))
        .unwrap()
    }

    #[test]
    fn longest_from_on_whole_components() {
        let map = m(&[("/115", "/mnt/115"), ("/115/Public", "/srv/pub/")]);
        assert_eq!(map.map("/115/Public/a").as_deref(), Some("/srv/pub/a"));
        assert_eq!(
            map.map("/115/PublicX/a").as_deref(),
            Some("/mnt/115/PublicX/a")
        );
        assert_eq!(map.map("/115").as_deref(), Some("/mnt/115"));
        assert_eq!(map.map("/116/a"), None);
        assert_eq!(m(&[]).map("/x").as_deref(), Some("/x"));
        assert_eq!(
            m(&[("/", "/data")]).map("/x/y").as_deref(),
            Some("/data/x/y")
        );
    }

    #[test]
    fn reserved_characters_cjk_and_emoji_pass_through_unchanged() {
        let map = m(&[("/115/电影 & TV", "/mnt/a+b/100%/#x")]);
        assert_eq!(
            map.map("/115/电影 & TV/Show #1 + 50% 🎬/e?.mkv").as_deref(),
            Some("/mnt/a+b/100%/#x/Show #1 + 50% 🎬/e?.mkv")
        );
        assert_eq!(
            map.map("/115/电影 & TV2/x"),
            None,
            "whole components, also for CJK"
        );
        let trailing = m(&[("/115/", "/mnt/115/")]);
        assert_eq!(trailing.map("/115/a/").as_deref(), Some("/mnt/115/a/"));
        assert_eq!(trailing.map("/115").as_deref(), Some("/mnt/115"));
    }

    #[test]
    fn windows_targets() {
        let map = m(&[("/115/TV", "D:\\Media\\TV\\")]);
        assert_eq!(
            map.map("/115/TV/Show & Co/S01 #1.mkv").as_deref(),
            Some("D:\\Media\\TV\\Show & Co\\S01 #1.mkv")
        );
        assert!(target_contains("D:\\Media\\TV", "d:\\media\\tv\\Show"));
        assert!(!target_contains("D:\\Media\\TV", "D:\\Media\\TV2"));
        assert_eq!(
            target_parent("D:\\Media\\TV\\x").as_deref(),
            Some("D:\\Media\\TV")
        );
        assert_eq!(target_parent("D:\\Media").as_deref(), Some("D:\\"));
        assert_eq!(target_parent("D:\\"), None);
        assert_eq!(m(&[("/a", "D:\\")]).map("/a/b").as_deref(), Some("D:\\b"));
    }

    #[test]
    fn posix_helpers() {
        assert!(target_contains("/tv", "/tv/a"));
        assert!(!target_contains("/tv", "/tv-4k/a"));
        assert!(target_same("/tv/", "/tv"));
        assert_eq!(target_parent("/tv/a").as_deref(), Some("/tv"));
        assert_eq!(target_parent("/tv").as_deref(), Some("/"));
        assert_eq!(target_parent("/"), None);
    }

    #[test]
    fn bad_rules_name_the_rule() {
        let err = PathMapping::new([MappingRule {
            from: "relative".into(),
            to: "/x".into(),
        }])
        .unwrap_err();
        assert_eq!(err.context_value("rule"), Some("path_mapping[0].from"));
        assert!(
            PathMapping::new([MappingRule {
                from: "/a".into(),
                to: " ".into(),
            }])
            .is_err()
        );
    }
}
