//! Go `time.Time` for templates: instants with a zone, Go layout
//! formatting (`"2006-01-02T15:04:05Z07:00"`) and parsing, and Go's
//! `Time.String()`.
//!
//! What flows through: `__timestamp__`, `now`, `toDate`, `unixToTime`
//! produce [`GoTime`] values; `date`, `unixEpoch`, printing consume them.
//! The process-local zone of Loki is taken to be UTC.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Offset, TimeZone, Timelike};
use chrono_tz::{OffsetName, Tz};

#[derive(Debug, Clone, PartialEq)]
pub enum Zone {
    Utc,
    Fixed { offset: i32, name: String },
    Named(Tz),
}

/// An instant (`secs` since the Unix epoch plus `nsec`) seen in a zone.
#[derive(Debug, Clone, PartialEq)]
pub struct GoTime {
    pub secs: i64,
    pub nsec: u32,
    pub zone: Zone,
}

/// Seconds from 0001-01-01 to 1970-01-01: Go's zero `time.Time`.
const ZERO_SECS: i64 = -62_135_596_800;

const LONG_DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const LONG_MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

impl GoTime {
    pub fn zero() -> GoTime {
        GoTime {
            secs: ZERO_SECS,
            nsec: 0,
            zone: Zone::Utc,
        }
    }

    pub fn from_unix_nanos(ns: i128) -> GoTime {
        GoTime {
            secs: ns.div_euclid(1_000_000_000) as i64,
            nsec: ns.rem_euclid(1_000_000_000) as u32,
            zone: Zone::Utc,
        }
    }

    pub fn now() -> GoTime {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        GoTime {
            secs: d.as_secs() as i64,
            nsec: d.subsec_nanos(),
            zone: Zone::Utc,
        }
    }

    pub fn unix_nanos(&self) -> i128 {
        self.secs as i128 * 1_000_000_000 + self.nsec as i128
    }

    /// The same instant in UTC (Loki's "Local").
    pub fn in_local(&self) -> GoTime {
        GoTime {
            zone: Zone::Utc,
            ..self.clone()
        }
    }

    /// Offset from UTC in seconds and zone abbreviation at this instant.
    fn offset(&self) -> (i32, String) {
        match &self.zone {
            Zone::Utc => (0, "UTC".to_string()),
            Zone::Fixed { offset, name } => (*offset, name.clone()),
            Zone::Named(tz) => {
                let utc = DateTime::from_timestamp(self.secs, 0)
                    .unwrap_or_default()
                    .naive_utc();
                let off = tz.offset_from_utc_datetime(&utc);
                let secs = off.fix().local_minus_utc();
                let name = off.abbreviation().map(str::to_string).unwrap_or_default();
                (secs, name)
            }
        }
    }

    fn civil(&self) -> (NaiveDateTime, i32, String) {
        let (off, name) = self.offset();
        let local = DateTime::from_timestamp(self.secs + off as i64, self.nsec)
            .unwrap_or_default()
            .naive_utc();
        (local, off, name)
    }

    /// Go's `Time.String()`.
    pub fn to_go_string(&self) -> String {
        self.format("2006-01-02 15:04:05.999999999 -0700 MST")
    }

    /// Go's `Time.Format(layout)`.
    pub fn format(&self, layout: &str) -> String {
        let (t, off, zname) = self.civil();
        let mut out = String::with_capacity(layout.len() + 10);
        let mut rest = layout;
        while !rest.is_empty() {
            let (prefix, std, suffix) = next_std_chunk(rest);
            out.push_str(prefix);
            let Some(std) = std else { break };
            rest = suffix;
            let year = t.year();
            let hour = t.hour();
            match std {
                Std::LongYear => out.push_str(&format!("{year:04}")),
                Std::Year => out.push_str(&format!("{:02}", year.rem_euclid(100))),
                Std::Month => out.push_str(&LONG_MONTHS[t.month0() as usize][..3]),
                Std::LongMonth => out.push_str(LONG_MONTHS[t.month0() as usize]),
                Std::NumMonth => out.push_str(&t.month().to_string()),
                Std::ZeroMonth => out.push_str(&format!("{:02}", t.month())),
                Std::WeekDay => {
                    out.push_str(&LONG_DAYS[t.weekday().num_days_from_sunday() as usize][..3])
                }
                Std::LongWeekDay => {
                    out.push_str(LONG_DAYS[t.weekday().num_days_from_sunday() as usize])
                }
                Std::Day => out.push_str(&t.day().to_string()),
                Std::UnderDay => out.push_str(&format!("{:>2}", t.day())),
                Std::ZeroDay => out.push_str(&format!("{:02}", t.day())),
                Std::UnderYearDay => out.push_str(&format!("{:>3}", t.ordinal())),
                Std::ZeroYearDay => out.push_str(&format!("{:03}", t.ordinal())),
                Std::Hour => out.push_str(&format!("{hour:02}")),
                Std::Hour12 => {
                    out.push_str(&(if hour % 12 == 0 { 12 } else { hour % 12 }).to_string())
                }
                Std::ZeroHour12 => out.push_str(&format!(
                    "{:02}",
                    if hour % 12 == 0 { 12 } else { hour % 12 }
                )),
                Std::Minute => out.push_str(&t.minute().to_string()),
                Std::ZeroMinute => out.push_str(&format!("{:02}", t.minute())),
                Std::Second => out.push_str(&t.second().to_string()),
                Std::ZeroSecond => out.push_str(&format!("{:02}", t.second())),
                Std::PM => out.push_str(if hour >= 12 { "PM" } else { "AM" }),
                Std::Pm => out.push_str(if hour >= 12 { "pm" } else { "am" }),
                Std::Tz => {
                    if zname.is_empty() {
                        push_offset(&mut out, off, false, false, false);
                    } else {
                        out.push_str(&zname);
                    }
                }
                Std::Offset {
                    z,
                    colon,
                    secs,
                    hours_only,
                } => {
                    if z && off == 0 {
                        out.push('Z');
                    } else if hours_only {
                        let sign = if off < 0 { '-' } else { '+' };
                        out.push_str(&format!("{sign}{:02}", off.abs() / 3600));
                    } else {
                        push_offset(&mut out, off, colon, secs, true);
                    }
                }
                Std::Frac { digits, trim, sep } => {
                    let frac = format!("{:09}", self.nsec);
                    let mut f = &frac[..digits.min(9)];
                    if trim {
                        f = f.trim_end_matches('0');
                        if f.is_empty() {
                            continue;
                        }
                    }
                    out.push(sep);
                    out.push_str(f);
                }
            }
        }
        out
    }
}

fn push_offset(out: &mut String, off: i32, colon: bool, secs: bool, _: bool) {
    let sign = if off < 0 { '-' } else { '+' };
    let a = off.abs();
    out.push(sign);
    out.push_str(&format!("{:02}", a / 3600));
    if colon {
        out.push(':');
    }
    out.push_str(&format!("{:02}", (a / 60) % 60));
    if secs {
        if colon {
            out.push(':');
        }
        out.push_str(&format!("{:02}", a % 60));
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Std {
    LongYear,
    Year,
    Month,
    LongMonth,
    NumMonth,
    ZeroMonth,
    WeekDay,
    LongWeekDay,
    Day,
    UnderDay,
    ZeroDay,
    UnderYearDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    PM,
    Pm,
    Tz,
    Offset {
        z: bool,
        colon: bool,
        secs: bool,
        hours_only: bool,
    },
    Frac {
        digits: usize,
        trim: bool,
        sep: char,
    },
}

/// Go's `nextStdChunk`: literal prefix, the layout element, the rest.
fn next_std_chunk(layout: &str) -> (&str, Option<Std>, &str) {
    let b = layout.as_bytes();
    let n = b.len();
    let has = |i: usize, s: &str| layout[i..].starts_with(s);
    for i in 0..n {
        let c = b[i];
        let hit: Option<(Std, usize)> = match c {
            b'J' if has(i, "January") => Some((Std::LongMonth, 7)),
            b'J' if has(i, "Jan") => Some((Std::Month, 3)),
            b'M' if has(i, "Monday") => Some((Std::LongWeekDay, 6)),
            b'M' if has(i, "Mon") => Some((Std::WeekDay, 3)),
            b'M' if has(i, "MST") => Some((Std::Tz, 3)),
            b'0' if i + 1 < n && (b'1'..=b'6').contains(&b[i + 1]) => Some((
                [
                    Std::ZeroMonth,
                    Std::ZeroDay,
                    Std::ZeroHour12,
                    Std::ZeroMinute,
                    Std::ZeroSecond,
                    Std::Year,
                ][(b[i + 1] - b'1') as usize],
                2,
            )),
            b'0' if has(i, "002") => Some((Std::ZeroYearDay, 3)),
            b'1' if has(i, "15") => Some((Std::Hour, 2)),
            b'1' => Some((Std::NumMonth, 1)),
            b'2' if has(i, "2006") => Some((Std::LongYear, 4)),
            b'2' => Some((Std::Day, 1)),
            b'_' if has(i, "_2006") => {
                return (&layout[..i + 1], Some(Std::LongYear), &layout[i + 5..]);
            }
            b'_' if has(i, "_2") => Some((Std::UnderDay, 2)),
            b'_' if has(i, "__2") => Some((Std::UnderYearDay, 3)),
            b'3' => Some((Std::Hour12, 1)),
            b'4' => Some((Std::Minute, 1)),
            b'5' => Some((Std::Second, 1)),
            b'P' if has(i, "PM") => Some((Std::PM, 2)),
            b'p' if has(i, "pm") => Some((Std::Pm, 2)),
            b'-' | b'Z' => {
                let z = c == b'Z';
                let table: [(&str, bool, bool, bool); 5] = [
                    ("070000", false, true, false),
                    ("07:00:00", true, true, false),
                    ("0700", false, false, false),
                    ("07:00", true, false, false),
                    ("07", false, false, true),
                ];
                table
                    .iter()
                    .find(|(s, ..)| has(i + 1, s))
                    .map(|(s, colon, secs, hours_only)| {
                        (
                            Std::Offset {
                                z,
                                colon: *colon,
                                secs: *secs,
                                hours_only: *hours_only,
                            },
                            1 + s.len(),
                        )
                    })
            }
            b'.' | b',' if i + 1 < n && (b[i + 1] == b'0' || b[i + 1] == b'9') => {
                let ch = b[i + 1];
                let mut j = i + 1;
                while j < n && b[j] == ch {
                    j += 1;
                }
                if j < n && b[j].is_ascii_digit() {
                    None
                } else {
                    Some((
                        Std::Frac {
                            digits: j - i - 1,
                            trim: ch == b'9',
                            sep: c as char,
                        },
                        j - i,
                    ))
                }
            }
            _ => None,
        };
        if let Some((std, len)) = hit {
            return (&layout[..i], Some(std), &layout[i + len..]);
        }
    }
    (layout, None, "")
}

fn getnum(v: &str, fixed: bool) -> Option<(i64, &str)> {
    let b = v.as_bytes();
    if b.is_empty() || !b[0].is_ascii_digit() {
        return None;
    }
    if b.len() < 2 || !b[1].is_ascii_digit() {
        if fixed {
            return None;
        }
        return Some(((b[0] - b'0') as i64, &v[1..]));
    }
    Some((((b[0] - b'0') * 10 + (b[1] - b'0')) as i64, &v[2..]))
}

fn getnum3(v: &str, fixed: bool) -> Option<(i64, &str)> {
    let b = v.as_bytes();
    let mut n = 0;
    let mut i = 0;
    while i < 3 && i < b.len() && b[i].is_ascii_digit() {
        n = n * 10 + (b[i] - b'0') as i64;
        i += 1;
    }
    if i == 0 || (fixed && i != 3) {
        return None;
    }
    Some((n, &v[i..]))
}

fn skip<'a>(mut value: &'a str, mut prefix: &str) -> Option<&'a str> {
    while !prefix.is_empty() {
        if prefix.as_bytes()[0] == b' ' {
            if !value.is_empty() && value.as_bytes()[0] != b' ' {
                return None;
            }
            prefix = prefix.trim_start_matches(' ');
            value = value.trim_start_matches(' ');
            continue;
        }
        if value.is_empty() || value.as_bytes()[0] != prefix.as_bytes()[0] {
            return None;
        }
        prefix = &prefix[1..];
        value = &value[1..];
    }
    Some(value)
}

fn lookup_name<'a>(v: &'a str, names: &[&str], len: Option<usize>) -> Option<(usize, &'a str)> {
    for (i, name) in names.iter().enumerate() {
        let name = match len {
            Some(l) => &name[..l],
            None => name,
        };
        if v.len() >= name.len()
            && v.is_char_boundary(name.len())
            && v[..name.len()].eq_ignore_ascii_case(name)
        {
            return Some((i, &v[name.len()..]));
        }
    }
    None
}

fn parse_offset(v: &str, colon: bool, secs: bool, hours_only: bool) -> Option<(i32, &str)> {
    let b = v.as_bytes();
    let sign = match b.first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let two = |s: &str| -> Option<i32> {
        let b = s.as_bytes();
        if b.len() < 2 || !b[0].is_ascii_digit() || !b[1].is_ascii_digit() {
            return None;
        }
        Some(((b[0] - b'0') * 10 + (b[1] - b'0')) as i32)
    };
    let mut rest = &v[1..];
    let hh = two(rest)?;
    rest = &rest[2..];
    let mut mm = 0;
    let mut ss = 0;
    if !hours_only {
        if colon {
            rest = rest.strip_prefix(':')?;
        }
        mm = two(rest)?;
        rest = &rest[2..];
        if secs {
            if colon {
                rest = rest.strip_prefix(':')?;
            }
            ss = two(rest)?;
            rest = &rest[2..];
        }
    }
    if hh > 24 || mm > 60 || ss > 60 {
        return None;
    }
    Some((sign * (hh * 3600 + mm * 60 + ss), rest))
}

/// Go's `time.ParseInLocation(layout, value, zone)`; `None` on any error.
pub fn parse_in(layout: &str, value: &str, zone: &Zone) -> Option<GoTime> {
    let mut value = value;
    let mut layout = layout;
    let (mut year, mut month, mut day, mut yday) = (1i64, -1i64, -1i64, -1i64);
    let (mut hour, mut min, mut sec, mut nsec) = (0i64, 0i64, 0i64, 0i64);
    let mut pm_set = false;
    let mut am_set = false;
    let mut offset: Option<i32> = None;
    let mut zname: Option<String> = None;
    loop {
        let (prefix, std, suffix) = next_std_chunk(layout);
        value = skip(value, prefix)?;
        let Some(std) = std else {
            if !value.is_empty() {
                return None;
            }
            break;
        };
        layout = suffix;
        match std {
            Std::Year => {
                let b = value.as_bytes();
                if b.len() < 2 || !b[0].is_ascii_digit() || !b[1].is_ascii_digit() {
                    return None;
                }
                let y: i64 = value[..2].parse().ok()?;
                year = if y >= 69 { y + 1900 } else { y + 2000 };
                value = &value[2..];
            }
            Std::LongYear => {
                if value.len() < 4 || !value.as_bytes()[..4].iter().all(u8::is_ascii_digit) {
                    return None;
                }
                year = value[..4].parse().ok()?;
                value = &value[4..];
            }
            Std::Month | Std::LongMonth => {
                let (m, rest) = lookup_name(
                    value,
                    &LONG_MONTHS,
                    if std == Std::Month { Some(3) } else { None },
                )?;
                month = m as i64 + 1;
                value = rest;
            }
            Std::NumMonth | Std::ZeroMonth => {
                let (m, rest) = getnum(value, std == Std::ZeroMonth)?;
                if !(1..=12).contains(&m) {
                    return None;
                }
                month = m;
                value = rest;
            }
            Std::WeekDay | Std::LongWeekDay => {
                let (_, rest) = lookup_name(
                    value,
                    &LONG_DAYS,
                    if std == Std::WeekDay { Some(3) } else { None },
                )?;
                value = rest;
            }
            Std::Day | Std::UnderDay | Std::ZeroDay => {
                if std == Std::UnderDay && value.starts_with(' ') {
                    value = &value[1..];
                }
                let (d, rest) = getnum(value, std == Std::ZeroDay)?;
                day = d;
                value = rest;
            }
            Std::UnderYearDay | Std::ZeroYearDay => {
                for _ in 0..2 {
                    if std == Std::UnderYearDay && value.starts_with(' ') {
                        value = &value[1..];
                    }
                }
                let (d, rest) = getnum3(value, std == Std::ZeroYearDay)?;
                yday = d;
                value = rest;
            }
            Std::Hour => {
                let (h, rest) = getnum(value, false)?;
                if !(0..24).contains(&h) {
                    return None;
                }
                hour = h;
                value = rest;
            }
            Std::Hour12 | Std::ZeroHour12 => {
                let (h, rest) = getnum(value, std == Std::ZeroHour12)?;
                if !(0..=12).contains(&h) {
                    return None;
                }
                hour = h;
                value = rest;
            }
            Std::Minute | Std::ZeroMinute => {
                let (m, rest) = getnum(value, std == Std::ZeroMinute)?;
                if !(0..60).contains(&m) {
                    return None;
                }
                min = m;
                value = rest;
            }
            Std::Second | Std::ZeroSecond => {
                let (s, rest) = getnum(value, std == Std::ZeroSecond)?;
                if !(0..60).contains(&s) {
                    return None;
                }
                sec = s;
                value = rest;
                // a fractional second in the value without one in the layout
                let vb = value.as_bytes();
                if vb.len() >= 2
                    && (vb[0] == b'.' || vb[0] == b',')
                    && vb[1].is_ascii_digit()
                    && !matches!(next_std_chunk(layout).1, Some(Std::Frac { .. }))
                {
                    let mut j = 1;
                    while j < vb.len() && vb[j].is_ascii_digit() {
                        j += 1;
                    }
                    nsec = parse_nanos(&value[1..j]);
                    value = &value[j..];
                }
            }
            Std::PM | Std::Pm => {
                if value.len() < 2 {
                    return None;
                }
                let (p, a) = if std == Std::PM {
                    ("PM", "AM")
                } else {
                    ("pm", "am")
                };
                let v2 = value.get(..2)?;
                if v2 == p {
                    pm_set = true;
                } else if v2 == a {
                    am_set = true;
                } else {
                    return None;
                }
                value = &value[2..];
            }
            Std::Offset {
                z,
                colon,
                secs,
                hours_only,
            } => {
                if z && value.starts_with('Z') {
                    value = &value[1..];
                    offset = Some(0);
                    zname = Some("UTC".into());
                } else {
                    let (o, rest) = parse_offset(value, colon, secs, hours_only)?;
                    offset = Some(o);
                    value = rest;
                }
            }
            Std::Tz => {
                if value.starts_with("UTC") {
                    zname = Some("UTC".into());
                    value = &value[3..];
                } else {
                    let n = value.bytes().take_while(u8::is_ascii_uppercase).count();
                    if n < 3 {
                        return None;
                    }
                    zname = Some(value[..n].to_string());
                    value = &value[n..];
                }
            }
            Std::Frac { digits, trim, .. } => {
                let vb = value.as_bytes();
                if trim {
                    if vb.len() < 2 || !(vb[0] == b'.' || vb[0] == b',') || !vb[1].is_ascii_digit()
                    {
                        continue;
                    }
                    let mut j = 1;
                    while j < vb.len() && j <= 9 && vb[j].is_ascii_digit() {
                        j += 1;
                    }
                    nsec = parse_nanos(&value[1..j]);
                    value = &value[j..];
                } else {
                    if vb.len() < digits + 1 || !(vb[0] == b'.' || vb[0] == b',') {
                        return None;
                    }
                    if !vb[1..=digits].iter().all(u8::is_ascii_digit) {
                        return None;
                    }
                    nsec = parse_nanos(&value[1..=digits]);
                    value = &value[digits + 1..];
                }
            }
        }
    }
    if pm_set && hour < 12 {
        hour += 12;
    } else if am_set && hour == 12 {
        hour = 0;
    }
    let date = if yday >= 0 {
        let d = NaiveDate::from_yo_opt(year as i32, yday as u32)?;
        if (month >= 0 && d.month() as i64 != month) || (day >= 0 && d.day() as i64 != day) {
            return None;
        }
        d
    } else {
        let m = if month < 0 { 1 } else { month };
        let d = if day < 0 { 1 } else { day };
        NaiveDate::from_ymd_opt(year as i32, m as u32, d as u32)?
    };
    let naive = date.and_hms_nano_opt(hour as u32, min as u32, sec as u32, nsec as u32)?;
    let local_secs = naive.and_utc().timestamp();
    if let Some(off) = offset {
        let zone = if off == 0 && (zname.as_deref() == Some("UTC") || matches!(zone, Zone::Utc)) {
            Zone::Utc
        } else {
            Zone::Fixed {
                offset: off,
                name: String::new(),
            }
        };
        return Some(GoTime {
            secs: local_secs - off as i64,
            nsec: nsec as u32,
            zone,
        });
    }
    if let Some(name) = zname {
        if name == "UTC" {
            return Some(GoTime {
                secs: local_secs,
                nsec: nsec as u32,
                zone: Zone::Utc,
            });
        }
        return Some(GoTime {
            secs: local_secs,
            nsec: nsec as u32,
            zone: Zone::Fixed { offset: 0, name },
        });
    }
    let secs = match zone {
        Zone::Utc => local_secs,
        Zone::Fixed { offset, .. } => local_secs - *offset as i64,
        Zone::Named(tz) => tz
            .from_local_datetime(&naive)
            .earliest()
            .map(|d| d.timestamp())
            .unwrap_or(local_secs),
    };
    Some(GoTime {
        secs,
        nsec: nsec as u32,
        zone: zone.clone(),
    })
}

fn parse_nanos(digits: &str) -> i64 {
    let mut n: i64 = 0;
    let mut k = 0;
    for c in digits.bytes().take(9) {
        n = n * 10 + (c - b'0') as i64;
        k += 1;
    }
    while k < 9 {
        n *= 10;
        k += 1;
    }
    n
}

/// Go's `time.LoadLocation` over the IANA names chrono-tz knows.
pub fn load_location(name: &str) -> Option<Zone> {
    if name.is_empty() || name == "UTC" || name == "Local" {
        return Some(Zone::Utc);
    }
    name.parse::<Tz>().ok().map(Zone::Named)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go() {
        let t = GoTime::from_unix_nanos(1_656_353_124_120_000_000);
        assert_eq!(t.format("2006-01-02"), "2022-06-27");
        assert_eq!(t.format(time_rfc3339_nano()), "2022-06-27T18:05:24.12Z");
        assert_eq!(t.to_go_string(), "2022-06-27 18:05:24.12 +0000 UTC");
        assert_eq!(
            t.format("Mon Jan _2 3:04:05 PM 2006 .000 002"),
            "Mon Jun 27 6:05:24 PM 2022 .120 178"
        );
        assert_eq!(
            t.format("Monday, January 2 06 15h -07:00 Z0700"),
            "Monday, June 27 22 18h +00:00 Z"
        );
        assert_eq!(
            GoTime::zero().to_go_string(),
            "0001-01-01 00:00:00 +0000 UTC"
        );
    }

    fn time_rfc3339_nano() -> &'static str {
        "2006-01-02T15:04:05.999999999Z07:00"
    }

    #[test]
    fn parses_like_go() {
        let t = parse_in("2006-01-02", "2021-11-02", &Zone::Utc).unwrap();
        assert_eq!(t.secs, 1_635_811_200);
        let t = parse_in(
            time_rfc3339_nano(),
            "2022-06-27T20:05:24.5+02:00",
            &Zone::Utc,
        )
        .unwrap();
        assert_eq!((t.secs, t.nsec), (1_656_353_124, 500_000_000));
        let t = parse_in("2006-01-02 15:04:05", "2022-06-27 18:05:24.25", &Zone::Utc).unwrap();
        assert_eq!(t.nsec, 250_000_000);
        let t = parse_in(
            "02/Jan/2006:15:04:05 -0700",
            "10/Oct/2000:13:55:36 -0700",
            &Zone::Utc,
        )
        .unwrap();
        assert_eq!(t.secs, 971_211_336);
        let z = load_location("Europe/Paris").unwrap();
        let t = parse_in("2006-01-02 15:04", "2023-07-01 12:00", &z).unwrap();
        assert_eq!(t.secs, 1_688_205_600);
        assert_eq!(t.format("15:04 MST -0700"), "12:00 CEST +0200");
        assert!(parse_in("2006-01-02", "2021-13-02", &Zone::Utc).is_none());
        assert!(parse_in("2006-01-02", "2021-02-30", &Zone::Utc).is_none());
        assert!(parse_in("2006-01-02", "2021-02-03x", &Zone::Utc).is_none());
        assert!(load_location("Nowhere/City").is_none());
    }
}
