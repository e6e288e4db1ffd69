//! Znode path rules (`PathUtils.validatePath`) and the parent/child split ZooKeeper uses.

/// The four nodes ZooKeeper creates itself and refuses to delete
/// (`DataTree.isSpecialPath`).
pub const ROOT: &str = "/";
pub const ZOOKEEPER: &str = "/zookeeper";
pub const QUOTA: &str = "/zookeeper/quota";
pub const CONFIG: &str = "/zookeeper/config";

pub fn is_special(path: &str) -> bool {
    matches!(path, ROOT | ZOOKEEPER | QUOTA | CONFIG)
}

/// `PathUtils.validatePath`: the reason a path is invalid, or `None` if it is valid.
///
/// Java checks UTF-16 code units; every character outside the Basic Multilingual Plane
/// is a surrogate pair there and therefore rejected, which is what the `> 0xFFFF` arm
/// reproduces.
pub fn path_error(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        return Some("Path length must be > 0");
    }
    if !path.starts_with('/') {
        return Some("Path must start with / character");
    }
    if path.len() == 1 {
        return None;
    }
    if path.ends_with('/') {
        return Some("Path must not end with / character");
    }
    // One pass without collecting: this runs on every request (the allocation profile
    // of the write path counted the Vec here). `before` is the character before `lastc`.
    let mut chars = path.chars().skip(1).peekable();
    let (mut lastc, mut before) = ('/', '/');
    while let Some(c) = chars.next() {
        let next_ends = chars.peek().is_none_or(|&n| n == '/');
        if c == '\0' {
            return Some("null character not allowed");
        } else if c == '/' && lastc == '/' {
            return Some("empty node name specified");
        } else if c == '.' && lastc == '.' {
            if before == '/' && next_ends {
                return Some("relative paths not allowed");
            }
        } else if c == '.' {
            if lastc == '/' && next_ends {
                return Some("relative paths not allowed");
            }
        } else {
            let u = c as u32;
            if (0x01..=0x1f).contains(&u)
                || (0x7f..=0x9f).contains(&u)
                || (0xd800..=0xf8ff).contains(&u)
                || (0xfff0..=0xffff).contains(&u)
                || u > 0xffff
            {
                return Some("invalid character");
            }
        }
        (before, lastc) = (lastc, c);
    }
    None
}

pub fn is_valid(path: &str) -> bool {
    path_error(path).is_none()
}

/// Splits at the last `/` as ZooKeeper does; the parent of `/a` is the root. `None` if
/// there is no `/` at all.
pub fn split(path: &str) -> Option<(&str, &str)> {
    let i = path.rfind('/')?;
    let parent = if i == 0 { ROOT } else { &path[..i] };
    Some((parent, &path[i + 1..]))
}

/// Joins a parent path and a child name.
pub fn join(parent: &str, child: &str) -> String {
    if parent == ROOT {
        format!("/{child}")
    } else {
        format!("{parent}/{child}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_paths() {
        for p in [
            "/",
            "/a",
            "/a/b",
            "/a.b",
            "/..a",
            "/a..",
            "/.a",
            "/a/...",
            "/zookeeper",
            "/é",
        ] {
            assert!(is_valid(p), "{p} should be valid");
        }
    }

    #[test]
    fn invalid_paths_match_path_utils() {
        for p in [
            "",
            "a",
            "a/b",
            "/a/",
            "//",
            "/a//b",
            "/.",
            "/..",
            "/a/.",
            "/a/..",
            "/./a",
            "/../a",
            "/a\0b",
            "/a\u{1}",
            "/a\u{7f}",
            "/a\u{9f}",
            "/a\u{e000}",
            "/a\u{fff0}",
            "/a\u{1f600}",
        ] {
            assert!(!is_valid(p), "{p:?} should be invalid");
        }
    }

    #[test]
    fn split_and_join() {
        assert_eq!(split("/a"), Some(("/", "a")));
        assert_eq!(split("/a/b"), Some(("/a", "b")));
        assert_eq!(split("/"), Some(("/", "")));
        assert_eq!(split("a"), None);
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
    }
}
