//! A minimal blocking client for the Prometheus HTTP query API, the same for
//! Prometheus and o11ydb: `/api/v1/query` and `/api/v1/query_range` URLs,
//! one GET per connection, chunked answers decoded. Used by the PromQL
//! differential test and `o11ydb bench promql`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// An answer: HTTP status and body text.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    /// The body as text (invalid UTF-8 replaced), for JSON and error messages.
    pub body: String,
    /// The body's bytes, for protobuf answers.
    pub bytes: Vec<u8>,
}

/// `/api/v1/query_range?query=…&start=…&end=…&step=…` (times in ms, sent as seconds).
pub fn query_range_path(query: &str, start_ms: i64, end_ms: i64, step_ms: i64) -> String {
    format!(
        "/api/v1/query_range?{}",
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("query", query)
            .append_pair("start", &seconds(start_ms))
            .append_pair("end", &seconds(end_ms))
            .append_pair("step", &seconds(step_ms))
            .finish()
    )
}

/// `/api/v1/query?query=…&time=…`.
pub fn instant_query_path(query: &str, time_ms: i64) -> String {
    format!(
        "/api/v1/query?{}",
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("query", query)
            .append_pair("time", &seconds(time_ms))
            .finish()
    )
}

/// Milliseconds as decimal seconds, exactly (`1700000000.017`).
pub fn seconds(ms: i64) -> String {
    let (s, frac) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    if frac == 0 {
        s.to_string()
    } else {
        format!("{s}.{frac:03}")
    }
}

/// One GET on its own connection; the whole answer read.
pub fn get(addr: SocketAddr, path: &str) -> std::io::Result<Answer> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(300)))?;
    stream.set_nodelay(true)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nUser-Agent: o11ydb-bench\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_answer(&raw)
}

/// POSTs a body (with extra header lines) on its own connection.
pub fn post(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Answer> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(300)))?;
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_answer(&raw)
}

/// POSTs a remote-write 1.0 body (snappy-compressed here) to `/api/v1/push`.
pub fn remote_write(addr: SocketAddr, body: &[u8]) -> std::io::Result<Answer> {
    let compressed = snap::raw::Encoder::new()
        .compress_vec(body)
        .map_err(std::io::Error::other)?;
    post(
        addr,
        "/api/v1/push",
        &[
            ("Content-Type", "application/x-protobuf"),
            ("Content-Encoding", "snappy"),
            ("X-Prometheus-Remote-Write-Version", "0.1.0"),
        ],
        &compressed,
    )
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

fn parse_answer(raw: &[u8]) -> std::io::Result<Answer> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of HTTP headers"))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad("bad HTTP status line"))?;
    let chunked = lines.any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding")
                && v.trim().eq_ignore_ascii_case("chunked")
        })
    });
    let rest = &raw[split + 4..];
    let body = if chunked {
        dechunk(rest)?
    } else {
        rest.to_vec()
    };
    Ok(Answer {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
        bytes: body,
    })
}

fn dechunk(mut rest: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| bad("truncated chunk size"))?;
        let size_text = String::from_utf8_lossy(&rest[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| bad("bad chunk size"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if rest.len() < size + 2 {
            return Err(bad("truncated chunk"));
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_answers_are_joined() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let a = parse_answer(raw).unwrap();
        assert_eq!((a.status, a.body.as_str()), (200, "abcde"));
    }

    #[test]
    fn times_are_exact_seconds() {
        assert_eq!(seconds(1_700_000_000_017), "1700000000.017");
        assert_eq!(seconds(60_000), "60");
        assert!(
            query_range_path("up{a=\"b\"}", 0, 60_000, 15_000)
                .contains("query=up%7Ba%3D%22b%22%7D")
        );
    }
}
