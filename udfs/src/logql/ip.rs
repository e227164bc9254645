//! The `ip("…")` line and label filters.
//!
//! What flows through: a compiled address set (one address, a range
//! `a-b`, or a CIDR prefix; IPv4 or IPv6) and a line or label value come
//! in; a match decision comes out. The scanner is Loki's: it looks for
//! tokens that start like an address (a digit followed by a `.` within
//! three bytes, or the start of an IPv6 group followed by `:`), takes the
//! longest run of address characters and parses it; a token that does not
//! parse or is out of range is skipped.

use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Matcher {
    Addr(IpAddr),
    Range(IpAddr, IpAddr),
    Prefix(IpAddr, u8),
}

/// A compiled `ip("…")` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpMatcher {
    m: Matcher,
}

const IPV4_CHARSET: &[u8] = b"0123456789.";
const IPV6_CHARSET: &[u8] = b"0123456789abcdefABCDEF:.";

/// Go `netip.ParseAddr` without zones: Rust's parser, which likewise
/// rejects IPv4 octets with leading zeros.
fn parse_addr(s: &str) -> Option<IpAddr> {
    s.parse().ok()
}

fn parse_prefix(s: &str) -> Option<(IpAddr, u8)> {
    let (a, bits) = s.split_once('/')?;
    let addr = parse_addr(a)?;
    if bits.is_empty()
        || !bits.bytes().all(|c| c.is_ascii_digit())
        || (bits.len() > 1 && bits.starts_with('0'))
    {
        return None;
    }
    let n: u32 = bits.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if n > max {
        return None;
    }
    Some((addr, n as u8))
}

fn to_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u32::from(v) as u128,
        IpAddr::V6(v) => u128::from(v),
    }
}

impl IpMatcher {
    /// Accepts what Loki accepts: a single address, a CIDR prefix
    /// (`192.168.4.5/16`, host bits allowed), or a range `from-to` without
    /// spaces, both ends of the same family and `from <= to`.
    pub fn compile(pattern: &str) -> Result<IpMatcher, String> {
        if let Some(a) = parse_addr(pattern) {
            return Ok(IpMatcher {
                m: Matcher::Addr(a),
            });
        }
        if let Some((a, n)) = parse_prefix(pattern) {
            return Ok(IpMatcher {
                m: Matcher::Prefix(a, n),
            });
        }
        if let Some((f, t)) = pattern.split_once('-')
            && let (Some(f), Some(t)) = (parse_addr(f), parse_addr(t))
            && f.is_ipv4() == t.is_ipv4()
            && to_u128(f) <= to_u128(t)
        {
            return Ok(IpMatcher {
                m: Matcher::Range(f, t),
            });
        }
        Err(format!("ip: invalid pattern: {pattern:?}"))
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match self.m {
            Matcher::Addr(a) => a == ip,
            Matcher::Range(f, t) => {
                f.is_ipv4() == ip.is_ipv4() && (to_u128(f)..=to_u128(t)).contains(&to_u128(ip))
            }
            Matcher::Prefix(a, n) => {
                if a.is_ipv4() != ip.is_ipv4() {
                    return false;
                }
                let width = if a.is_ipv4() { 32 } else { 128 };
                if n == 0 {
                    return true;
                }
                let shift = width - n as u32;
                (to_u128(a) >> shift) == (to_u128(ip) >> shift)
            }
        }
    }

    /// Label filter `addr = ip("…")`. Loki runs the same scan over the
    /// label value as over a line, so a value that merely contains a
    /// matching address also matches.
    pub fn matches_value(&self, value: &str) -> bool {
        self.matches_line(value)
    }

    /// Line filter `|= ip("…")`: some address token of the line matches.
    pub fn matches_line(&self, line: &str) -> bool {
        let b = line.as_bytes();
        let n = b.len();
        let at = |i: usize| if i < n { b[i] } else { 0 };
        let mut i = 0;
        while i < n {
            let charset = if i + 3 < n && ipv4_hint(&b[i..i + 4]) {
                Some(IPV4_CHARSET)
            } else if ipv6_hint([at(i), at(i + 1), at(i + 2), at(i + 3), at(i + 4)]) {
                Some(IPV6_CHARSET)
            } else {
                None
            };
            if let Some(cs) = charset {
                let len = b[i..].iter().position(|c| !cs.contains(c)).unwrap_or(n - i);
                // the run is ASCII, so slicing at its ends is valid UTF-8
                if let Some(ip) = parse_addr(&line[i..i + len])
                    && self.contains(ip)
                {
                    return true;
                }
                i += len;
            }
            i += 1;
        }
        false
    }
}

fn ipv4_hint(p: &[u8]) -> bool {
    p[0].is_ascii_digit() && (p[1] == b'.' || p[2] == b'.' || p[3] == b'.')
}

fn ipv6_hint(p: [u8; 5]) -> bool {
    let h = |c: u8| c.is_ascii_hexdigit();
    (p[0] == b':' && p[1] == b':' && h(p[2]))
        || (h(p[0]) && p[1] == b':')
        || (h(p[0]) && h(p[1]) && p[2] == b':')
        || (h(p[0]) && h(p[1]) && h(p[2]) && p[3] == b':')
        || (h(p[0]) && h(p[1]) && h(p[2]) && h(p[3]) && p[4] == b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matched(pat: &str, lines: &[&str]) -> Vec<usize> {
        let m = IpMatcher::compile(pat).unwrap();
        lines
            .iter()
            .enumerate()
            .filter(|(_, l)| m.matches_line(l))
            .map(|(i, _)| i)
            .collect()
    }

    #[test]
    fn single_addresses() {
        let lines = [
            "vpn 192.168.0.5 connected to vm",
            "vpn 192.168.0.1 connected to vm",
            "x",
            "hello world!",
            "",
        ];
        assert_eq!(matched("192.168.0.1", &lines), vec![1]);
        let lines6 = [
            "vpn ::1 connected to vm",
            "vpn 192.168.0.1 connected to vm",
            "x",
            "hello world!",
            "",
        ];
        assert_eq!(matched("::1", &lines6), vec![0]);
        let end = [
            "vpn connected to ::1",
            "::1",
            "vpn 192.168.0.1 connected to vm",
            "x",
            "",
        ];
        assert_eq!(matched("::1", &end), vec![0, 1]);
    }

    #[test]
    fn ranges() {
        let lines = [
            "vpn 192.168.0.0 connected to vm",
            "vpn 192.168.0.0 192.168.0.1 connected to vm",
            "vpn 192.172.6.1 connected to vm",
            "vpn 192.255.255.255 connected to vm",
            "x",
            "hello world!",
            "",
        ];
        assert_eq!(matched("192.168.0.1-192.189.10.12", &lines), vec![1, 2]);
        let lines6 = [
            "vpn 192.168.0.0 connected to vm",
            "vpn 2001:db8::2 connected to vm",
            "vpn 2001:db8::9 connected to vm",
            "vpn 2001:db8::5 connected to vm",
            "x",
            "hello world!",
            "",
        ];
        assert_eq!(matched("2001:db8::1-2001:db8::8", &lines6), vec![1, 3]);
        assert!(IpMatcher::compile("192.168.0.1 - 192.189.10.12").is_err());
        assert!(IpMatcher::compile("192.168.0.2-1.0.0.0").is_err());
        assert!(IpMatcher::compile("192.168.0.2-::1").is_err());
        assert!(IpMatcher::compile("not an ip").is_err());
        assert!(IpMatcher::compile("1.2.3.4/33").is_err());
    }

    #[test]
    fn cidrs() {
        let lines = [
            "vpn 192.168.0.0 connected to vm",
            "vpn 192.168.0.1 connected to vm",
            "vpn 192.172.6.1 connected to vm",
            "vpn 192.168.255.255 connected to vm",
            "x",
            "hello world!",
            "",
        ];
        assert_eq!(matched("192.168.4.5/16", &lines), vec![0, 1, 3]);
        let lines6 = [
            "vpn 2001:db8::1 connected to vm",
            "vpn 2001:db9::3 connected to vm",
            "vpn 2001:dc8::1 and 2001:db8::2 connected to vm",
            "vpn 192.168.255.255 connected to vm",
            "x",
            "hello world!",
            "",
        ];
        assert_eq!(matched("2001:db8::/32", &lines6), vec![0, 2]);
        assert_eq!(matched("0.0.0.0/0", &["a 10.0.0.1", "::1 only"]), vec![0]);
    }

    #[test]
    fn label_values() {
        let m = IpMatcher::compile("192.168.0.1").unwrap();
        assert!(m.matches_value("192.168.0.1"));
        assert!(
            !IpMatcher::compile("192.168.0.2")
                .unwrap()
                .matches_value("192.168.0.1")
        );
        assert!(!m.matches_value(""));
        assert!(!m.matches_value("192.168.000.1"));
    }
}
