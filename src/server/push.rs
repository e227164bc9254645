//! HTTP ingest endpoints shared plumbing: the tenant from `X-Scope-OrgID`,
//! request bodies (size limit, snappy/gzip decoding), and the answers —
//! `204` when everything was written, `400` naming the first invalid item
//! and the counts (the valid items are still written), `413` for bodies over
//! the limit, `415` for unknown content types or remote write messages, `429` over the rate limit,
//! `503` when the write path cannot take the data (retryable).
//!
//! Protocol decoders live in `crate::ingest`; this module only translates.

use std::io::Read;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::engine::Engine;
use crate::ingest::distributor::{Decoded, PushError};
use crate::ingest::limits::Limits;
use crate::ingest::validate::{DecodeError, now_ms};
use crate::ingest::{remote_write, validate_tenant};

/// The tenant header of Loki, Mimir and Tempo.
pub const TENANT_HEADER: &str = "X-Scope-OrgID";

/// An error answer: status and a plain-text reason.
pub fn reply(status: u16, message: impl Into<String>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut text = message.into();
    text.push('\n');
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}

/// A refused request: the HTTP status and the reason, answered as plain text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub message: String,
}

impl Rejection {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Rejection {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        reply(self.status, self.message)
    }
}

/// The tenant of a request: `X-Scope-OrgID`, or `anonymous` when
/// authentication is off and the header is missing.
pub fn tenant(engine: &Engine, headers: &HeaderMap) -> Result<String, Rejection> {
    resolve_tenant(engine, headers.get(TENANT_HEADER).map(|v| v.as_bytes()))
}

/// The tenant named by a tenant header (HTTP) or `x-scope-orgid` metadata
/// (gRPC) value, `None` when absent: the rules every write protocol shares.
/// Errors carry the HTTP status (400 invalid, 401 missing with
/// `auth_enabled`) and the reason.
pub fn resolve_tenant(engine: &Engine, value: Option<&[u8]>) -> Result<String, Rejection> {
    match value {
        Some(v) => {
            let tenant = std::str::from_utf8(v)
                .map_err(|_| Rejection::new(400, format!("{TENANT_HEADER} is not valid text")))?
                .trim();
            if tenant.contains('|') {
                return Err(Rejection::new(
                    400,
                    format!(
                        "{TENANT_HEADER} {tenant:?} names several tenants; a write goes to exactly one"
                    ),
                ));
            }
            validate_tenant(tenant)
                .map_err(|e| Rejection::new(400, format!("invalid {TENANT_HEADER}: {e}")))?;
            Ok(tenant.to_string())
        }
        None if engine.config().auth_enabled => Err(Rejection::new(
            401,
            format!("no tenant: the {TENANT_HEADER} header is required (auth_enabled = true)"),
        )),
        None => Ok(engine.config().pgwire.default_tenant.clone()),
    }
}

/// The request body, decompressed per `Content-Encoding` (and, for
/// `snappy_default`, snappy when no encoding is named: remote write and
/// Loki's protobuf push send raw snappy blocks).
pub fn body(
    engine: &Engine,
    headers: &HeaderMap,
    raw: &Bytes,
    snappy_default: bool,
) -> Result<Vec<u8>, Rejection> {
    let max = engine.config().server.max_decompressed_body_bytes as usize;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match encoding.as_str() {
        "snappy" => snappy(raw, max),
        "" if snappy_default => snappy(raw, max),
        "gzip" | "x-gzip" => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&raw[..])
                .take(max as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| Rejection::new(400, format!("gzip body does not decompress: {e}")))?;
            if out.len() > max {
                return Err(too_large(max));
            }
            Ok(out)
        }
        "" | "identity" => Ok(raw.to_vec()),
        other => Err(Rejection::new(
            415,
            format!("unsupported Content-Encoding {other:?} (use snappy, gzip or none)"),
        )),
    }
}

fn too_large(max: usize) -> Rejection {
    Rejection::new(
        413,
        format!("decompressed body is larger than server.max_decompressed_body_bytes = {max}"),
    )
}

fn snappy(raw: &[u8], max: usize) -> Result<Vec<u8>, Rejection> {
    let len = snap::raw::decompress_len(raw)
        .map_err(|e| Rejection::new(400, format!("body is not snappy-compressed: {e}")))?;
    if len > max {
        return Err(too_large(max));
    }
    snap::raw::Decoder::new()
        .decompress_vec(raw)
        .map_err(|e| Rejection::new(400, format!("snappy body is corrupt: {e}")))
}

/// What every HTTP push starts from: the tenant, the decoded body and the
/// tenant's limits.
pub struct Incoming {
    pub tenant: String,
    pub body: Vec<u8>,
    pub limits: Arc<Limits>,
}

/// Resolves the tenant and decodes the body (see [`body`]).
pub fn incoming(
    engine: &Engine,
    headers: &HeaderMap,
    raw: &Bytes,
    snappy_default: bool,
) -> Result<Incoming, Rejection> {
    let tenant = tenant(engine, headers)?;
    let body = body(engine, headers, raw, snappy_default)?;
    let limits = engine.distributor().limits().get(&tenant);
    Ok(Incoming {
        tenant,
        body,
        limits,
    })
}

/// The `Content-Type` media type, lower-cased, without parameters.
pub fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

/// Runs a decoded request through the distributor and answers it.
pub async fn push(
    engine: &Engine,
    tenant: &str,
    decoded: Result<Decoded, DecodeError>,
) -> Response {
    push_counting(engine, tenant, decoded).await.0
}

/// [`push`], also returning how many rows were written.
async fn push_counting(
    engine: &Engine,
    tenant: &str,
    decoded: Result<Decoded, DecodeError>,
) -> (Response, u64) {
    let decoded = match decoded {
        Ok(d) => d,
        Err(e) => return (reply(e.status, e.message), 0),
    };
    match engine.distributor().push(tenant, decoded).await {
        Ok(written) => (StatusCode::NO_CONTENT.into_response(), written),
        Err(e @ PushError::Invalid { accepted, .. }) => (reply(400, e.to_string()), accepted),
        Err(e) => (reply(e.http_status(), e.to_string()), 0),
    }
}

/// The remote write message a `Content-Type` names: 1.0 unless `proto=` says 2.0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RemoteWriteVersion {
    V1,
    V2,
}

fn remote_write_version(headers: &HeaderMap) -> Result<RemoteWriteVersion, Rejection> {
    let media = media_type(headers);
    if !media.is_empty() && media != "application/x-protobuf" {
        return Err(Rejection::new(
            415,
            format!(
                "unsupported Content-Type {media:?} for remote write (use application/x-protobuf)"
            ),
        ));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let proto = content_type
        .split(';')
        .skip(1)
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("proto"))
        .map(|(_, v)| v.trim().trim_matches('"'));
    match proto {
        None | Some("prometheus.WriteRequest") => Ok(RemoteWriteVersion::V1),
        Some("io.prometheus.write.v2.Request") => Ok(RemoteWriteVersion::V2),
        Some(other) => Err(Rejection::new(
            415,
            format!(
                "unsupported remote write message proto={other:?} (use prometheus.WriteRequest or io.prometheus.write.v2.Request)"
            ),
        )),
    }
}

/// `POST /api/v1/push`, `POST /api/v1/write`: Prometheus remote write 1.0
/// and 2.0. 2.0 answers carry the `X-Prometheus-Remote-Write-*-Written`
/// counts the protocol asks for.
pub async fn remote_write(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let version = match remote_write_version(&headers) {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    let request = match incoming(&engine, &headers, &raw, true) {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    let decoded = match version {
        RemoteWriteVersion::V1 => remote_write::decode_write_request_cached(
            &request.body,
            &request.limits,
            now_ms(),
            &engine.distributor().series_cache(&request.tenant),
        ),
        RemoteWriteVersion::V2 => {
            remote_write::decode_write_request_v2(&request.body, &request.limits, now_ms())
        }
    };
    // Rows with a native histogram, for the 2.0 counts.
    let histograms: u64 = decoded.as_ref().map_or(0, |d| {
        d.batches
            .iter()
            .filter_map(|b| b.column_by_name("histogram"))
            .map(|c| (c.len() - c.null_count()) as u64)
            .sum()
    });
    let (mut response, written) = push_counting(&engine, &request.tenant, decoded).await;
    if version == RemoteWriteVersion::V2 {
        let histograms = histograms.min(written);
        let h = response.headers_mut();
        h.insert(
            "X-Prometheus-Remote-Write-Samples-Written",
            (written - histograms).into(),
        );
        h.insert(
            "X-Prometheus-Remote-Write-Histograms-Written",
            histograms.into(),
        );
        h.insert("X-Prometheus-Remote-Write-Exemplars-Written", 0.into());
    }
    response
}

/// `GET /metrics`: self-monitoring in the Prometheus text format.
pub async fn metrics(State(engine): State<Arc<Engine>>) -> Response {
    engine.refresh_self_metrics();
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        engine.metrics().render(),
    )
        .into_response()
}
