//! HTTP endpoints for pushed logs and Zipkin spans: they pick the decoder by
//! `Content-Type`, undo `Content-Encoding` (see [`super::push::body`]) and
//! hand the decoded rows to the distributor through [`super::push::push`].
//!
//! * `POST /loki/api/v1/push` — Loki push: `application/json` (optionally
//!   gzip) or `application/x-protobuf` (snappy; also the default when no
//!   `Content-Type` is given). `204` on success.
//! * `POST /api/v2/spans` — Zipkin v2 JSON (optionally gzip). `202` on
//!   success, as Zipkin answers.
//!
//! Any other `Content-Type` is refused with `415`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::push::{incoming, media_type, push, reply};
use crate::engine::Engine;
use crate::ingest::validate::now_ms;
use crate::ingest::{loki_push, zipkin};

/// `POST /loki/api/v1/push`.
pub async fn loki_push(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let json = match media_type(&headers).as_str() {
        "application/json" => true,
        "" | "application/x-protobuf" => false,
        other => {
            return reply(
                415,
                format!(
                    "unsupported Content-Type {other:?} for Loki push (use application/json or application/x-protobuf)"
                ),
            );
        }
    };
    let request = match incoming(&engine, &headers, &raw, !json) {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    let decoded = if json {
        loki_push::decode_push_json(&request.body, &request.limits, now_ms())
    } else {
        loki_push::decode_push_protobuf(&request.body, &request.limits, now_ms())
    };
    push(&engine, &request.tenant, decoded).await
}

/// `POST /api/v2/spans`: Zipkin v2 JSON.
pub async fn zipkin_spans(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let media = media_type(&headers);
    if !media.is_empty() && media != "application/json" {
        return reply(
            415,
            format!(
                "unsupported Content-Type {media:?} for Zipkin spans (only Zipkin v2 JSON, application/json, is supported)"
            ),
        );
    }
    let request = match incoming(&engine, &headers, &raw, false) {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    let decoded = zipkin::decode_spans_json(&request.body, &request.limits, now_ms());
    let response = push(&engine, &request.tenant, decoded).await;
    if response.status() == StatusCode::NO_CONTENT {
        return StatusCode::ACCEPTED.into_response();
    }
    response
}
