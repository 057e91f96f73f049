//! A parser for Java `.properties` text with the exact semantics of
//! `java.util.Properties.load` (JDK 9+), so `server.properties` files and MSK
//! configuration bodies mean the same thing to Millrace as to Kafka.
//!
//! Rules implemented (from the JDK's `LineReader` and `loadConvert`):
//! * line terminators are `\n`, `\r` and `\r\n`;
//! * leading space, tab and form feed of every natural line are skipped;
//!   blank lines are ignored;
//! * a `#` or `!` seen while the logical line is still empty is a comment
//!   up to the end of the natural line (a trailing backslash does not
//!   continue a comment; a continuation line that starts with `#` after an
//!   empty continued line is a comment too);
//! * a line ending in an odd number of backslashes continues on the next
//!   line; the backslash, the terminator and the next line's leading
//!   whitespace are dropped; a backslash at end of input is dropped (a lone
//!   `\` at the very end yields the entry `("", "")`);
//! * the key ends at the first unescaped `=`, `:` or whitespace; whitespace
//!   around the separator and at most one `=`/`:` are skipped; trailing
//!   whitespace of the value is kept;
//! * escapes: `\t \n \r \f \uXXXX` (UTF-16, surrogate pairs combined) and
//!   `\x` for any other `x` yields `x`.
//!
//! The input is text (like `Properties.load(Reader)`); Kafka itself reads
//! files as ISO-8859-1, which only matters for non-ASCII bytes.

use std::collections::HashMap;

use crate::error::ConfigError;

/// One logical line: its characters (continuations joined) and, for each
/// character, the 1-based physical line it came from.
struct LogicalLine {
    chars: Vec<char>,
    lines: Vec<usize>,
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t' || c == '\u{000C}'
}

fn is_eol(c: char) -> bool {
    c == '\n' || c == '\r'
}

/// Splits text into logical lines exactly like the JDK 17 `LineReader`.
fn logical_lines(text: &str) -> Vec<LogicalLine> {
    let chars: Vec<char> = text.chars().collect();
    let n = chars.len();
    // 1-based physical line of every character (`\r\n` is one terminator).
    let mut line_of = Vec::with_capacity(n);
    let mut line = 1;
    for (i, &c) in chars.iter().enumerate() {
        line_of.push(line);
        if c == '\n' || (c == '\r' && chars.get(i + 1) != Some(&'\n')) {
            line += 1;
        }
    }

    let mut out = Vec::new();
    let mut off = 0;
    loop {
        // One `readLine` call.
        let mut buf: Vec<char> = Vec::new();
        let mut lines: Vec<usize> = Vec::new();
        let mut skip_white_space = true;
        let mut appended_line_begin = false;
        let mut preceding_backslash = false;
        loop {
            if off >= n {
                // End of input: a dangling backslash is dropped.
                if !buf.is_empty() {
                    if preceding_backslash {
                        buf.pop();
                        lines.pop();
                    }
                    out.push(LogicalLine { chars: buf, lines });
                }
                return out;
            }
            let c = chars[off];
            off += 1;
            if skip_white_space {
                if is_blank(c) || (!appended_line_begin && is_eol(c)) {
                    continue;
                }
                skip_white_space = false;
                appended_line_begin = false;
            }
            if buf.is_empty() && (c == '#' || c == '!') {
                // Comment: skip to the end of the natural line.
                loop {
                    if off >= n {
                        return out;
                    }
                    let b = chars[off];
                    off += 1;
                    if is_eol(b) {
                        break;
                    }
                }
                skip_white_space = true;
                continue;
            }
            if !is_eol(c) {
                buf.push(c);
                lines.push(line_of[off - 1]);
                preceding_backslash = c == '\\' && !preceding_backslash;
                continue;
            }
            // End of a natural line.
            if buf.is_empty() {
                skip_white_space = true;
                continue;
            }
            if off >= n {
                if preceding_backslash {
                    buf.pop();
                    lines.pop();
                }
                out.push(LogicalLine { chars: buf, lines });
                return out;
            }
            if preceding_backslash {
                // Continuation: drop the backslash, the terminator and the
                // next line's leading whitespace.
                buf.pop();
                lines.pop();
                skip_white_space = true;
                appended_line_begin = true;
                preceding_backslash = false;
                if c == '\r' && chars.get(off) == Some(&'\n') {
                    off += 1;
                }
            } else {
                out.push(LogicalLine { chars: buf, lines });
                break;
            }
        }
    }
}

/// `Properties.loadConvert`: resolves escapes in `chars[start..end]`.
fn load_convert(
    chars: &[char],
    lines: &[usize],
    start: usize,
    end: usize,
) -> Result<String, ConfigError> {
    let mut units: Vec<u16> = Vec::with_capacity(end.saturating_sub(start));
    let mut scratch = [0u16; 2];
    let mut off = start;
    while off < end {
        let c = chars[off];
        off += 1;
        if c != '\\' {
            units.extend_from_slice(c.encode_utf16(&mut scratch));
            continue;
        }
        let Some(&next) = chars.get(off).filter(|_| off < end) else {
            // A lone trailing backslash cannot normally reach here (it is a
            // continuation); drop it like the JDK's buffer would.
            break;
        };
        off += 1;
        match next {
            'u' => {
                if off + 4 > end {
                    return Err(malformed_unicode(lines, off - 2));
                }
                let mut value: u16 = 0;
                for k in 0..4 {
                    let digit = chars[off + k]
                        .to_digit(16)
                        .ok_or_else(|| malformed_unicode(lines, off - 2))?;
                    value = (value << 4) | digit as u16;
                }
                off += 4;
                units.push(value);
            }
            't' => units.push(u16::from(b'\t')),
            'r' => units.push(u16::from(b'\r')),
            'n' => units.push(u16::from(b'\n')),
            'f' => units.push(0x0C),
            other => units.extend_from_slice(other.encode_utf16(&mut scratch)),
        }
    }
    Ok(String::from_utf16_lossy(&units))
}

fn malformed_unicode(lines: &[usize], at: usize) -> ConfigError {
    ConfigError::Properties {
        line: lines.get(at).copied().unwrap_or(1),
        message: "Malformed \\uxxxx encoding.".to_string(),
    }
}

/// `Properties.load0`: splits a logical line into key and value.
fn split_key_value(l: &LogicalLine) -> Result<(String, String), ConfigError> {
    let chars = &l.chars;
    let limit = chars.len();
    let mut key_len = 0;
    let mut value_start = limit;
    let mut has_sep = false;
    let mut preceding_backslash = false;
    while key_len < limit {
        let c = chars[key_len];
        if (c == '=' || c == ':') && !preceding_backslash {
            value_start = key_len + 1;
            has_sep = true;
            break;
        } else if is_blank(c) && !preceding_backslash {
            value_start = key_len + 1;
            break;
        }
        preceding_backslash = c == '\\' && !preceding_backslash;
        key_len += 1;
    }
    while value_start < limit {
        let c = chars[value_start];
        if !is_blank(c) {
            if !has_sep && (c == '=' || c == ':') {
                has_sep = true;
            } else {
                break;
            }
        }
        value_start += 1;
    }
    let key = load_convert(chars, &l.lines, 0, key_len)?;
    let value = load_convert(chars, &l.lines, value_start, limit)?;
    Ok((key, value))
}

/// Parses `.properties` text like `java.util.Properties.load`.
///
/// Returns the entries in file order; when a key repeats, the entry keeps the
/// position of its first occurrence and takes the last value (the JDK keeps
/// only the last value, in a hash table). Never panics; the only error is a
/// malformed `\uXXXX` escape, reported with its line number.
pub fn parse_properties(text: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for line in logical_lines(text) {
        let (key, value) = split_key_value(&line)?;
        match index.get(&key) {
            Some(&pos) => out[pos].1 = value,
            None => {
                index.insert(key.clone(), out.len());
                out.push((key, value));
            }
        }
    }
    Ok(out)
}

/// Parses one `--override key=value` command-line argument the way
/// `kafka.Kafka` does (split at the first `=`; key and value trimmed).
pub fn parse_override(arg: &str) -> Result<(String, String), ConfigError> {
    match arg.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(ConfigError::Invalid {
            name: None,
            message: format!("Invalid command line properties: {arg}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(text: &str) -> Vec<(String, String)> {
        parse_properties(text).unwrap()
    }

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn separators() {
        assert_eq!(
            p("a=1\nb:2\nc 3\nd\t4\ne = 5\nf : 6\ng   =   7\nh  8"),
            kv(&[
                ("a", "1"),
                ("b", "2"),
                ("c", "3"),
                ("d", "4"),
                ("e", "5"),
                ("f", "6"),
                ("g", "7"),
                ("h", "8")
            ])
        );
    }

    #[test]
    fn only_one_separator_is_skipped() {
        assert_eq!(p("a==b"), kv(&[("a", "=b")]));
        assert_eq!(p("a = :b"), kv(&[("a", ":b")]));
        assert_eq!(p("a :=b"), kv(&[("a", "=b")]));
        assert_eq!(p("a b=c"), kv(&[("a", "b=c")]));
    }

    #[test]
    fn key_without_value_and_empty_key() {
        assert_eq!(
            p("lonely\nempty=\n=novalue"),
            kv(&[("lonely", ""), ("empty", ""), ("", "novalue")])
        );
    }

    #[test]
    fn comments_and_blank_lines() {
        let text = "# comment\n! bang comment\n   # indented comment\n\n   \n\t\na=1\n#b=2\n";
        assert_eq!(p(text), kv(&[("a", "1")]));
        // A '#' inside a value is data.
        assert_eq!(p("a=1 # not a comment"), kv(&[("a", "1 # not a comment")]));
    }

    #[test]
    fn comment_does_not_continue() {
        assert_eq!(p("# comment \\\na=1"), kv(&[("a", "1")]));
    }

    #[test]
    fn trailing_whitespace_of_value_is_kept() {
        assert_eq!(p("  a = b  \n"), kv(&[("a", "b  ")]));
    }

    #[test]
    fn line_terminators() {
        assert_eq!(
            p("a=1\r\nb=2\rc=3\n"),
            kv(&[("a", "1"), ("b", "2"), ("c", "3")])
        );
    }

    #[test]
    fn continuation() {
        assert_eq!(
            p("listeners=PLAINTEXT://:9092,\\\n    SSL://:9093\nx=y"),
            kv(&[("listeners", "PLAINTEXT://:9092,SSL://:9093"), ("x", "y")])
        );
        // Continuation across \r\n.
        assert_eq!(p("a=1\\\r\n  2"), kv(&[("a", "12")]));
        // Even number of backslashes: no continuation.
        assert_eq!(p("a=x\\\\\nb=2"), kv(&[("a", "x\\"), ("b", "2")]));
        // Continuation into an empty line ends the logical line.
        assert_eq!(p("a=1\\\n\nb=2"), kv(&[("a", "1"), ("b", "2")]));
        // Continued key.
        assert_eq!(p("ke\\\n  y=v"), kv(&[("key", "v")]));
        // A continuation line starting with '#' is data...
        assert_eq!(p("a=\\\n#x"), kv(&[("a", "#x")]));
        // ...unless the logical line is still empty.
        assert_eq!(p("\\\n#x=1\nb=2"), kv(&[("b", "2")]));
        // Backslash + final terminator at end of input.
        assert_eq!(p("a\n\\\r"), kv(&[("a", ""), ("", "")]));
        assert_eq!(p("a\n\\\r\n"), kv(&[("a", "")]));
    }

    #[test]
    fn backslash_at_end_of_input() {
        assert_eq!(p("a=1\\"), kv(&[("a", "1")]));
        assert_eq!(p("\\"), kv(&[("", "")]));
        // JDK: backslash + terminator as the last characters still yields a line.
        assert_eq!(p("\\\n"), kv(&[("", "")]));
        assert_eq!(p("\\\n "), kv(&[]));
        assert_eq!(p("a=1\\\n"), kv(&[("a", "1")]));
    }

    #[test]
    fn escapes() {
        assert_eq!(
            p(r"a=tab\there\nnl\rcr\ffeed\\bs\u0041\u00e9\qq"),
            kv(&[("a", "tab\there\nnl\rcr\u{c}feed\\bsAéqq")])
        );
        assert_eq!(
            p(r"key\ with\=odd\:chars = v"),
            kv(&[("key with=odd:chars", "v")])
        );
        // Leading whitespace of a value can be kept by escaping it.
        assert_eq!(p(r"a=\  b"), kv(&[("a", "  b")]));
        // Surrogate pair.
        assert_eq!(p(r"a=\uD83D\uDE00"), kv(&[("a", "\u{1F600}")]));
        // Lone surrogate becomes U+FFFD instead of panicking.
        assert_eq!(p(r"a=\uD83D"), kv(&[("a", "\u{FFFD}")]));
    }

    #[test]
    fn malformed_unicode_reports_line() {
        let err = parse_properties("a=1\nb=2\nc=\\u12G4\n").unwrap_err();
        assert_eq!(
            err,
            ConfigError::Properties {
                line: 3,
                message: "Malformed \\uxxxx encoding.".into()
            }
        );
        let err = parse_properties("a=1\nb=\\\n  \\u12").unwrap_err();
        assert!(
            matches!(err, ConfigError::Properties { line: 3, .. }),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "line 3: Malformed \\uxxxx encoding.");
    }

    #[test]
    fn duplicates_keep_first_position_last_value() {
        assert_eq!(p("a=1\nb=2\na=3"), kv(&[("a", "3"), ("b", "2")]));
    }

    #[test]
    fn form_feed_is_whitespace() {
        assert_eq!(p("\u{c}a\u{c}=\u{c}b"), kv(&[("a", "b")]));
    }

    #[test]
    fn overrides() {
        assert_eq!(
            parse_override("num.partitions=3").unwrap(),
            ("num.partitions".to_string(), "3".to_string())
        );
        assert_eq!(
            parse_override("a=b=c").unwrap(),
            ("a".to_string(), "b=c".to_string())
        );
        assert!(parse_override("novalue").is_err());
        assert!(parse_override("=x").is_err());
    }

    /// Escapes a string so that `parse_properties` reads it back verbatim
    /// (what `Properties.store` does, minus `\u` for non-ASCII).
    fn escape(s: &str, is_key: bool) -> String {
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            match c {
                ' ' if is_key || i == 0 => out.push_str("\\ "),
                '\\' => out.push_str("\\\\"),
                '\t' => out.push_str("\\t"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\u{c}' => out.push_str("\\f"),
                '=' | ':' | '#' | '!' => {
                    out.push('\\');
                    out.push(c);
                }
                _ => out.push(c),
            }
        }
        out
    }

    proptest! {
        #[test]
        fn never_panics(text in any::<String>()) {
            let _ = parse_properties(&text);
        }

        #[test]
        fn never_panics_on_properties_like_text(
            text in "[ \\t\\r\\n\\\\=:#!a-z0-9u]{0,64}"
        ) {
            let _ = parse_properties(&text);
        }

        #[test]
        fn escaped_entries_round_trip(
            entries in proptest::collection::btree_map("[^\u{0}]{1,12}", "[^\u{0}]{0,12}", 0..6)
        ) {
            let mut text = String::new();
            for (k, v) in &entries {
                text.push_str(&escape(k, true));
                text.push('=');
                text.push_str(&escape(v, false));
                text.push('\n');
            }
            let parsed = parse_properties(&text).unwrap();
            let expected: Vec<(String, String)> =
                entries.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            prop_assert_eq!(parsed, expected);
        }
    }
}
