//! The `java.util.Properties` text format that `zoo.cfg` is written in.
//!
//! ZooKeeper loads `zoo.cfg` with `Properties.load`, so an operator's file may use any of
//! its rules: `#`/`!` comment lines, `=`, `:` or whitespace between key and value, a
//! trailing backslash to continue a line, and `\t`, `\n`, `\uXXXX` escapes. We implement
//! those rules (and remember the line each entry began on, for error messages).

/// One `key=value` entry as written, before ZooKeeper's trimming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawEntry {
    pub(crate) key: String,
    pub(crate) value: String,
    /// 1-based line on which the entry (or its first continued line) starts.
    pub(crate) line: usize,
}

/// A malformed line: its 1-based number and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PropertiesError {
    pub(crate) line: usize,
    pub(crate) reason: String,
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t' || c == '\x0c'
}

/// Splits on `\n`, `\r\n` or a lone `\r`, as Java's `LineReader` does.
fn physical_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => {
                lines.push(&text[start..i]);
                start = i + 1;
            }
            b'\r' => {
                lines.push(&text[start..i]);
                if bytes.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if start < text.len() {
        lines.push(&text[start..]);
    }
    lines
}

fn ends_with_odd_backslashes(s: &str) -> bool {
    s.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1
}

/// Parses the whole file into entries in file order (duplicates kept; the caller decides).
pub(crate) fn parse(text: &str) -> Result<Vec<RawEntry>, PropertiesError> {
    let lines = physical_lines(text);
    let mut entries = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line_no = i + 1;
        let first = lines[i].trim_start_matches(is_blank);
        i += 1;
        if first.is_empty() || first.starts_with('#') || first.starts_with('!') {
            continue;
        }
        let mut logical = String::new();
        let mut current = first;
        loop {
            if ends_with_odd_backslashes(current) {
                logical.push_str(&current[..current.len() - 1]);
                match lines.get(i) {
                    Some(next) => {
                        current = next.trim_start_matches(is_blank);
                        i += 1;
                    }
                    None => break,
                }
            } else {
                logical.push_str(current);
                break;
            }
        }
        let (raw_key, raw_value) = split_key_value(&logical);
        let key = unescape(raw_key).map_err(|reason| PropertiesError {
            line: line_no,
            reason,
        })?;
        let value = unescape(raw_value).map_err(|reason| PropertiesError {
            line: line_no,
            reason,
        })?;
        entries.push(RawEntry {
            key,
            value,
            line: line_no,
        });
    }
    Ok(entries)
}

/// The key ends at the first unescaped `=`, `:` or blank; one `=`/`:` may follow blanks.
fn split_key_value(logical: &str) -> (&str, &str) {
    let mut escaped = false;
    let mut key_end = logical.len();
    let mut value_start = logical.len();
    let mut separator_seen = false;
    for (idx, c) in logical.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        if c == '\\' {
            escaped = true;
            continue;
        }
        if c == '=' || c == ':' {
            key_end = idx;
            value_start = idx + 1;
            separator_seen = true;
            break;
        }
        if is_blank(c) {
            key_end = idx;
            value_start = idx + c.len_utf8();
            break;
        }
    }
    let mut rest = logical[value_start..].trim_start_matches(is_blank);
    if !separator_seen && (rest.starts_with('=') || rest.starts_with(':')) {
        rest = rest[1..].trim_start_matches(is_blank);
    }
    (&logical[..key_end], rest)
}

fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\x0c'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let code = (hex.len() == 4)
                    .then(|| u32::from_str_radix(&hex, 16).ok())
                    .flatten()
                    .and_then(char::from_u32)
                    .ok_or_else(|| format!("malformed \\uxxxx escape: \\u{hex}"))?;
                out.push(code);
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(text: &str) -> Vec<(String, String, usize)> {
        parse(text)
            .unwrap()
            .into_iter()
            .map(|e| (e.key, e.value, e.line))
            .collect()
    }

    fn one(k: &str, v: &str, line: usize) -> (String, String, usize) {
        (k.to_string(), v.to_string(), line)
    }

    #[test]
    fn comments_blank_lines_and_separators() {
        let text = "# comment\n! bang comment\n\n   \ntickTime=2000\n  initLimit : 10\nsyncLimit 5\ndataDir=/a=b\nempty=\nbare\n";
        assert_eq!(
            kv(text),
            vec![
                one("tickTime", "2000", 5),
                one("initLimit", "10", 6),
                one("syncLimit", "5", 7),
                one("dataDir", "/a=b", 8),
                one("empty", "", 9),
                one("bare", "", 10),
            ]
        );
    }

    #[test]
    fn trailing_whitespace_is_kept_for_the_caller_to_trim() {
        assert_eq!(
            kv("clientPort=2181  \t"),
            vec![one("clientPort", "2181  \t", 1)]
        );
    }

    #[test]
    fn continuation_lines_and_line_endings() {
        let text = "a=one\\\n    two\r\nb=x\\\\\rc=3\\";
        assert_eq!(
            kv(text),
            vec![one("a", "onetwo", 1), one("b", "x\\", 3), one("c", "3", 4)]
        );
    }

    #[test]
    fn a_continued_hash_is_data_not_a_comment() {
        assert_eq!(kv("a=1\\\n#2\n"), vec![one("a", "1#2", 1)]);
    }

    #[test]
    fn escapes() {
        assert_eq!(kv("k\\=ey=v\\u0041\\t\\:x"), vec![one("k=ey", "vA\t:x", 1)]);
    }

    #[test]
    fn malformed_unicode_escape_names_the_line() {
        let err = parse("a=1\nb=\\u12\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.reason.contains("\\u"), "{}", err.reason);
    }
}
