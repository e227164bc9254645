//! The HTTP front end on `--http-listen`: readiness and operational endpoints
//! shared by the Loki, Prometheus and Tempo APIs that mount here.
//!
//! * `GET /ready`, `/-/ready`, `/-/healthy` — 200 once the engine is open
//!   (the Loki/Mimir/Tempo and Prometheus conventions).
//! * `POST /flush` — flush every head to blocks now (Loki's ingester `/flush`).
//! * `GET /debug/storage` — blocks, rows, block and index bytes, blocks pending
//!   deletion and WAL size per tenant and signal, as JSON.
//! * `POST /compactor/run` — run the compactor now; answers what it did as JSON
//!   (409 naming the run under way if there is one).
//! * `GET /compactor/status` — the compaction run under way with its progress,
//!   and the last finished run's report, as JSON.
//! * `GET /metrics` — self-monitoring in the Prometheus text format.
//! * `POST /api/v1/push`, `/api/v1/write` — Prometheus remote write (see `push`).
//! * `POST /v1/traces`, `/v1/logs`, `/v1/metrics` — OTLP/HTTP, protobuf or JSON (see `otlp`).
//! * `/api/v1/query`, `/api/v1/query_range`, `/api/v1/series`, `/api/v1/labels`, ... —
//!   the Prometheus HTTP query API (see `prometheus`).
//! * `/loki/api/v1/...` — the Loki HTTP query API (see `loki`).
//! * `GET /api/v1/rules`, `/api/v1/alerts` — the ruler's rules and alerts (see `rules_api`).
//! * `/api/traces/<id>`, `/api/v2/traces/<id>`, `/api/search/tags`,
//!   `/api/v2/search/tags`, `/api/search/tag/<tag>/values`,
//!   `/api/v2/search/tag/<tag>/values`, `/api/echo`, `/api/status/buildinfo` —
//!   the Tempo HTTP query API (see `tempo`).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use axum::routing::{get, post};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::{loki, otlp, prometheus, push, push_logs, rules_api, tempo};
use crate::engine::Engine;
use crate::model::Signal;

pub fn router(engine: Arc<Engine>) -> Router {
    let max_body = engine.config().server.max_request_body_bytes as usize;
    Router::new()
        .route("/ready", get(|| async { "ready\n" }))
        .route("/-/ready", get(|| async { "o11ydb is Ready.\n" }))
        .route("/-/healthy", get(|| async { "o11ydb is Healthy.\n" }))
        .route("/flush", post(flush))
        .route("/debug/storage", get(storage_status))
        .route("/compactor/run", post(compactor_run))
        .route("/compactor/status", get(compactor_status))
        .route("/metrics", get(push::metrics))
        .route("/api/v1/push", post(push::remote_write))
        .route("/api/v1/write", post(push::remote_write))
        .route("/v1/traces", post(otlp::traces))
        .route("/v1/logs", post(otlp::logs))
        .route("/v1/metrics", post(otlp::metrics))
        .route("/loki/api/v1/push", post(push_logs::loki_push))
        .route("/api/v2/spans", post(push_logs::zipkin_spans))
        .merge(prometheus::routes())
        .merge(loki::routes())
        .merge(tempo::routes())
        .merge(rules_api::routes())
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(
            engine.clone(),
            time_queries,
        ))
        .with_state(engine)
}

/// The query language a query endpoint speaks (metadata endpoints are not timed).
fn query_language(path: &str) -> Option<&'static str> {
    match path {
        "/api/v1/query" | "/api/v1/query_range" => Some("promql"),
        "/loki/api/v1/query" | "/loki/api/v1/query_range" => Some("logql"),
        "/api/search" | "/api/metrics/query" | "/api/metrics/query_range" => Some("traceql"),
        p if p.starts_with("/api/traces/") || p.starts_with("/api/v2/traces/") => Some("traceql"),
        _ => None,
    }
}

/// Records the latency of each query request in `o11ydb_query_duration_seconds`.
async fn time_queries(
    State(engine): State<Arc<Engine>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let _timer = query_language(request.uri().path())
        .map(|language| engine.metrics().query_timer("http", language));
    next.run(request).await
}

async fn flush(State(engine): State<Arc<Engine>>) -> impl IntoResponse {
    let report = engine.flush().await;
    let body = json!({
        "blocks": report.blocks,
        "rows": report.rows,
        "wal_segments_removed": report.wal_segments_removed,
        "failed": report.failed,
    });
    let status = if report.failed.is_empty() {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    (status, Json(body))
}

async fn compactor_run(State(engine): State<Arc<Engine>>) -> axum::response::Response {
    let report = match engine.compactor().try_run().await {
        Ok(report) => report,
        Err(running) => {
            let message = match &running {
                Some(job) => format!(
                    "compaction run {} (started by {} at {}) is under way: {} of {} groups done; see GET /compactor/status",
                    job.id, job.trigger, job.started_at, job.groups_done, job.groups_total
                ),
                None => "a compaction run is under way; see GET /compactor/status".to_string(),
            };
            let body = json!({"error": message, "running": running});
            return (StatusCode::CONFLICT, Json(body)).into_response();
        }
    };
    let status = if report.failed.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    (status, Json(report)).into_response()
}

async fn compactor_status(State(engine): State<Arc<Engine>>) -> impl IntoResponse {
    Json(engine.compactor().status())
}

async fn storage_status(State(engine): State<Arc<Engine>>) -> impl IntoResponse {
    let ingester = engine.ingester();
    let storage = ingester.storage();
    let mut tenants: Vec<String> = storage.tenants();
    tenants.extend(ingester.heads().tenants());
    tenants.sort();
    tenants.dedup();
    let mut out = serde_json::Map::new();
    for tenant in tenants {
        let mut signals = serde_json::Map::new();
        for signal in Signal::ALL {
            let manifest = storage.manifest(&tenant, signal);
            let head_rows = ingester.head(&tenant, signal).map_or(0, |h| h.stats().rows);
            signals.insert(
                signal.table_name().to_string(),
                json!({
                    "manifest_version": manifest.version,
                    "blocks": manifest.blocks.len(),
                    "block_rows": manifest.total_rows(),
                    "block_bytes": manifest.total_bytes(),
                    "index_bytes": manifest.total_index_bytes(),
                    "head_rows": head_rows,
                    "pending_deletions": manifest.pending_deletions,
                }),
            );
        }
        out.insert(tenant, serde_json::Value::Object(signals));
    }
    Json(json!({
        "storage": storage.description(),
        "wal_bytes": ingester.wal().disk_bytes(),
        "tenants": out,
    }))
}

/// Serves HTTP on `listener` until `shutdown` fires.
pub async fn serve(
    listener: TcpListener,
    engine: Arc<Engine>,
    mut shutdown: watch::Receiver<bool>,
) {
    let app = router(engine);
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = shutdown.changed().await;
        })
        .await;
    if let Err(e) = result {
        tracing::error!("HTTP server failed: {e}");
    }
}
