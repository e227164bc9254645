//! Request parameters of the Prometheus HTTP API, read the way Prometheus
//! reads them (`web/api/v1/api.go`):
//!
//! * [`Form`]: URL query parameters merged with an
//!   `application/x-www-form-urlencoded` POST body, body values first — Go's
//!   `Request.ParseForm`, so `FormValue` prefers the body;
//! * [`parse_time`]: unix seconds as a float (rounded to milliseconds) or
//!   RFC 3339, plus the two boundary strings Go clients send for "unbounded";
//! * [`parse_duration`]: float seconds or a Prometheus duration (`1h30m`);
//! * errors worded like Prometheus': `invalid parameter "start": cannot
//!   parse "abc" to a valid timestamp`.

use axum::http::{HeaderMap, Method, header};

pub use crate::query::go_text::go_quote;
use crate::query::promql::PromError;

/// The parameters of one request (Go's `Request.Form`).
#[derive(Debug, Default, Clone)]
pub struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    /// Body parameters (POST, PUT and PATCH with a form content type) first,
    /// then the URL's.
    pub fn parse(method: &Method, query: Option<&str>, headers: &HeaderMap, body: &[u8]) -> Form {
        let mut pairs = Vec::new();
        let has_form_body = matches!(*method, Method::POST | Method::PUT | Method::PATCH)
            && headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(';').next())
                .is_some_and(|media| {
                    media
                        .trim()
                        .eq_ignore_ascii_case("application/x-www-form-urlencoded")
                });
        if has_form_body {
            pairs.extend(url::form_urlencoded::parse(body).into_owned());
        }
        if let Some(query) = query {
            pairs.extend(url::form_urlencoded::parse(query.as_bytes()).into_owned());
        }
        Form { pairs }
    }

    /// The first value of `name`; `None` when absent or empty (Go's
    /// `FormValue` answers `""` for both, and Prometheus treats them alike).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// Every value of a repeated parameter such as `match[]`.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// `invalid parameter "<name>": <reason>` (HTTP 400, `bad_data`).
pub fn invalid_parameter(name: &str, reason: impl std::fmt::Display) -> PromError {
    PromError::BadData(format!("invalid parameter {}: {reason}", go_quote(name)))
}

/// `time.Unix(math.MinInt64/1000+62135596801, 0)` in milliseconds: the start
/// of an unbounded range (`MinTime` in Prometheus' API).
pub const MIN_TIME_MS: i64 = -9_223_309_901_257_974_000;
/// `time.Unix(math.MaxInt64/1000-62135596801, 999999999)` in milliseconds.
pub const MAX_TIME_MS: i64 = 9_223_309_901_257_974_999;
/// `MinTime.Format(time.RFC3339Nano)`, which Go clients send for "no start".
const MIN_TIME_FORMATTED: &str = "-292273086-05-16T16:47:06Z";
/// `MaxTime.Format(time.RFC3339Nano)`.
const MAX_TIME_FORMATTED: &str = "292277025-08-18T07:12:54.999999999Z";

/// A timestamp parameter in milliseconds: unix seconds (`1435781451.781`,
/// rounded to the millisecond like Prometheus) or RFC 3339.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let unparseable = || format!("cannot parse {} to a valid timestamp", go_quote(s));
    if let Ok(t) = s.parse::<f64>() {
        // Prometheus: s, ns := math.Modf(t); ns = math.Round(ns*1000)/1000;
        // time.Unix(int64(s), int64(ns*1e9)), then whole milliseconds.
        // Non-finite and out-of-range values (garbage in Go) are refused.
        let secs = t.trunc();
        if !secs.is_finite() || secs.abs() > (i64::MAX / 1000 - 1) as f64 {
            return Err(unparseable());
        }
        let frac = (t.fract() * 1000.0).round() / 1000.0;
        let nanos = (frac * 1e9) as i64;
        let total_ns = secs as i128 * 1_000_000_000 + nanos as i128;
        return i64::try_from(total_ns.div_euclid(1_000_000)).map_err(|_| unparseable());
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    match s {
        MIN_TIME_FORMATTED => Ok(MIN_TIME_MS),
        MAX_TIME_FORMATTED => Ok(MAX_TIME_MS),
        _ => Err(unparseable()),
    }
}

/// An optional timestamp parameter (`parseTimeParam`): `default` when absent,
/// otherwise a time, its error naming the parameter twice as Prometheus does.
pub fn time_param(form: &Form, name: &str, default: i64) -> Result<i64, PromError> {
    match form.get(name) {
        None => Ok(default),
        Some(s) => parse_time(s)
            .map_err(|e| invalid_parameter(name, format!("invalid time value for '{name}': {e}"))),
    }
}

/// The `[start, end]` bounds of a metadata request (series, labels, label
/// values); `None` for an end left open (absent, or Prometheus' boundary
/// times).
pub fn optional_range(form: &Form) -> Result<(Option<i64>, Option<i64>), PromError> {
    let start = time_param(form, "start", MIN_TIME_MS)?;
    let end = time_param(form, "end", MAX_TIME_MS)?;
    Ok((
        (start > MIN_TIME_MS).then_some(start),
        (end < MAX_TIME_MS).then_some(end),
    ))
}

/// A duration parameter in nanoseconds (Go's `time.Duration`): float seconds
/// (`15`, `0.5`) or a Prometheus duration (`15s`, `1h30m`, `1y2w`).
pub fn parse_duration(s: &str) -> Result<i64, String> {
    if let Ok(secs) = s.parse::<f64>() {
        let ns = secs * 1e9;
        if ns > i64::MAX as f64 || ns < i64::MIN as f64 {
            return Err(format!(
                "cannot parse {} to a valid duration. It overflows int64",
                go_quote(s)
            ));
        }
        return Ok(ns as i64);
    }
    o11ydb_udfs::logql::template::prometheus::duration_ms(s)
        .and_then(|ms| (ms as i64).checked_mul(1_000_000))
        .ok_or_else(|| format!("cannot parse {} to a valid duration", go_quote(s)))
}

/// The `limit` parameter (`parseLimitParam`): 0 (no limit) when absent.
pub fn limit_param(form: &Form) -> Result<usize, PromError> {
    let Some(s) = form.get("limit") else {
        return Ok(0);
    };
    let limit: i64 = s.parse().map_err(|_| {
        let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
        let why = if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            "value out of range"
        } else {
            "invalid syntax"
        };
        invalid_parameter(
            "limit",
            format!("strconv.Atoi: parsing {}: {why}", go_quote(s)),
        )
    })?;
    if limit < 0 {
        return Err(invalid_parameter("limit", "limit must be non-negative"));
    }
    Ok(limit as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(method: Method, query: &str, content_type: Option<&str>, body: &str) -> Form {
        let mut headers = HeaderMap::new();
        if let Some(ct) = content_type {
            headers.insert(header::CONTENT_TYPE, ct.parse().unwrap());
        }
        Form::parse(&method, Some(query), &headers, body.as_bytes())
    }

    #[test]
    fn post_bodies_merge_with_the_url_body_first() {
        let f = form(
            Method::POST,
            "query=url&match[]=a",
            Some("application/x-www-form-urlencoded; charset=UTF-8"),
            "query=body+1%2B1&match%5B%5D=b",
        );
        assert_eq!(f.get("query"), Some("body 1+1"));
        assert_eq!(f.all("match[]"), vec!["b", "a"]);
        // GET bodies and other content types are not form data.
        let f = form(Method::GET, "query=url", None, "query=body");
        assert_eq!(f.get("query"), Some("url"));
        let f = form(Method::POST, "", Some("application/json"), "query=body");
        assert_eq!(f.get("query"), None);
        let f = form(Method::GET, "time=", None, "");
        assert_eq!(f.get("time"), None);
    }

    #[test]
    fn times_like_prometheus() {
        assert_eq!(parse_time("1435781451.781"), Ok(1435781451781));
        assert_eq!(parse_time("1435781451"), Ok(1435781451000));
        assert_eq!(parse_time("1.2346"), Ok(1235));
        // The same float64 steps as Go: the fraction of 1.0005 is 0.00049999….
        assert_eq!(parse_time("1.0005"), Ok(1000));
        assert_eq!(parse_time("-1.5"), Ok(-1500));
        assert_eq!(parse_time("1e3"), Ok(1_000_000));
        assert_eq!(parse_time("2015-07-01T20:10:51.781Z"), Ok(1435781451781));
        assert_eq!(parse_time("2015-07-01T22:10:51+02:00"), Ok(1435781451000));
        assert_eq!(parse_time(MIN_TIME_FORMATTED), Ok(MIN_TIME_MS));
        assert_eq!(parse_time(MAX_TIME_FORMATTED), Ok(MAX_TIME_MS));
        assert_eq!(
            parse_time("abc"),
            Err(r#"cannot parse "abc" to a valid timestamp"#.into())
        );
        assert!(parse_time("NaN").is_err());
        assert!(parse_time("").is_err());
    }

    #[test]
    fn durations_like_prometheus() {
        const MS: i64 = 1_000_000;
        assert_eq!(parse_duration("15"), Ok(15_000 * MS));
        assert_eq!(parse_duration("0.5"), Ok(500 * MS));
        assert_eq!(parse_duration("15s"), Ok(15_000 * MS));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000 * MS));
        assert_eq!(parse_duration("1m30s500ms"), Ok(90_500 * MS));
        assert_eq!(parse_duration("1y"), Ok(365 * 86_400_000 * MS));
        assert_eq!(parse_duration("2w1d"), Ok(15 * 86_400_000 * MS));
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration("-5"), Ok(-5000 * MS));
        for bad in ["", "5x", "1.5h", "30m1h", "1h1h", "s", "1h ", "ms"] {
            assert_eq!(
                parse_duration(bad),
                Err(format!(
                    "cannot parse {} to a valid duration",
                    go_quote(bad)
                )),
                "{bad}"
            );
        }
        assert_eq!(
            parse_duration("1e300"),
            Err(r#"cannot parse "1e300" to a valid duration. It overflows int64"#.into())
        );
    }

    #[test]
    fn limits_and_errors_name_the_parameter() {
        let f = form(Method::GET, "limit=abc", None, "");
        assert_eq!(
            limit_param(&f).unwrap_err().to_string(),
            r#"invalid parameter "limit": strconv.Atoi: parsing "abc": invalid syntax"#
        );
        let f = form(Method::GET, "limit=-1", None, "");
        assert_eq!(
            limit_param(&f).unwrap_err().to_string(),
            r#"invalid parameter "limit": limit must be non-negative"#
        );
        let f = form(Method::GET, "limit=3", None, "");
        assert_eq!(limit_param(&f).unwrap(), 3);
        let f = form(Method::GET, "start=x", None, "");
        assert_eq!(
            optional_range(&f).unwrap_err().to_string(),
            r#"invalid parameter "start": invalid time value for 'start': cannot parse "x" to a valid timestamp"#
        );
        let f = form(Method::GET, "end=10", None, "");
        assert_eq!(optional_range(&f).unwrap(), (None, Some(10_000)));
    }

    #[test]
    fn go_quoting() {
        assert_eq!(go_quote("a\"b\\\n\u{1}"), r#""a\"b\\\n\x01""#);
    }
}
