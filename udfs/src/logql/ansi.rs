//! `| decolorize`: ANSI escape sequences removed from a line.
//!
//! What flows through: one log line comes in; the line without the
//! sequences Loki's decolorizer removes comes out, borrowed when there was
//! nothing to remove. A hand-written matcher of Loki's pattern
//! `[\x1b\x9b][[\]()#;?]*(?:(?:(?:[a-zA-Z\d]*(?:;[a-zA-Z\d]*)*)?\x07)|(?:(?:\d{1,4}(?:;\d{0,4})*)?[\dA-PRZcf-ntqry=><~]))`.

use std::borrow::Cow;

/// The line without ANSI colour and control sequences.
pub fn strip(line: &str) -> Cow<'_, str> {
    let b = line.as_bytes();
    if memchr::memchr2(0x1b, 0xc2, b).is_none() {
        return Cow::Borrowed(line);
    }
    let mut out = String::new();
    let mut last = 0;
    let mut i = 0;
    let mut changed = false;
    while i < b.len() {
        let intro = if b[i] == 0x1b {
            1
        } else if b[i] == 0xc2 && b.get(i + 1) == Some(&0x9b) {
            2
        } else {
            0
        };
        if intro > 0
            && let Some(len) = match_sequence(&b[i + intro..])
        {
            out.push_str(&line[last..i]);
            i += intro + len;
            last = i;
            changed = true;
            continue;
        }
        i += 1;
    }
    if !changed {
        return Cow::Borrowed(line);
    }
    out.push_str(&line[last..]);
    Cow::Owned(out)
}

fn is_final(c: u8) -> bool {
    c.is_ascii_digit()
        || (b'A'..=b'P').contains(&c)
        || c == b'R'
        || c == b'Z'
        || c == b'c'
        || (b'f'..=b'n').contains(&c)
        || matches!(c, b'q' | b'r' | b't' | b'y' | b'=' | b'>' | b'<' | b'~')
}

/// Length of the sequence after the introducer, leftmost-first like the
/// regex alternation: the BEL-terminated form, then the CSI form.
fn match_sequence(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < b.len() && matches!(b[i], b'[' | b']' | b'(' | b')' | b'#' | b';' | b'?') {
        i += 1;
    }
    // Alternative 1: [a-zA-Z\d]*(;[a-zA-Z\d]*)* then BEL.
    {
        let mut j = i;
        while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b';') {
            j += 1;
        }
        if j < b.len() && b[j] == 0x07 {
            return Some(j + 1);
        }
    }
    // Alternative 2: (\d{1,4}(;\d{0,4})*)? then a final byte. Regex
    // backtracking tries the longest parameter run first, then shorter ones.
    let mut ends = vec![i]; // parameter part may be empty
    let mut j = i;
    let mut n = 0;
    while j < b.len() && b[j].is_ascii_digit() && n < 4 {
        j += 1;
        n += 1;
        ends.push(j);
    }
    if n > 0 {
        while j < b.len() && b[j] == b';' {
            j += 1;
            ends.push(j);
            let mut m = 0;
            while j < b.len() && b[j].is_ascii_digit() && m < 4 {
                j += 1;
                m += 1;
                ends.push(j);
            }
        }
    }
    for &e in ends.iter().rev() {
        if e < b.len() && is_final(b[e]) {
            return Some(e + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_colours() {
        assert_eq!(strip("\x1b[31mred\x1b[0m plain"), "red plain");
        assert_eq!(strip("\x1b[1;32mbold green\x1b[m"), "bold green");
        assert_eq!(strip("\x1b[38;5;196mx\x1b[39m"), "x");
        assert_eq!(strip("\x1b]0;title\x07after"), "after");
        assert_eq!(strip("a\u{9b}31mb"), "ab");
        assert_eq!(
            strip("2023-01-01 \x1b[0;34mINFO\x1b[0m msg=\"héllo\""),
            "2023-01-01 INFO msg=\"héllo\""
        );
    }

    #[test]
    fn borrows_when_clean() {
        assert!(matches!(strip("plain ünïcode"), Cow::Borrowed(_)));
        assert!(matches!(strip("lone \x1b escape"), Cow::Borrowed(_)));
        assert_eq!(strip(""), "");
    }
}
