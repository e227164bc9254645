//! OTLP receivers: OTLP/HTTP (`POST /v1/traces`, `/v1/logs`, `/v1/metrics`
//! on the HTTP listener) and OTLP/gRPC (`TraceService`, `LogsService`,
//! `MetricsService` on `server.otlp_grpc_listen`). Both decode an
//! `Export*ServiceRequest`, hand it to the converters in
//! [`crate::ingest::otlp`] and push the rows through the distributor; the
//! tenant comes from `X-Scope-OrgID` (header or `x-scope-orgid` metadata).
//!
//! Answers follow the OTLP specification: success is `200` / `OK` with an
//! empty `Export*ServiceResponse`; items refused as invalid give a partial
//! success (`rejected_<items>` and `error_message`) in an OK answer; over the
//! rate limit is `429` / `RESOURCE_EXHAUSTED`, an overloaded or failing
//! write path `503` / `UNAVAILABLE` (both retryable); a malformed request is
//! `400` / `INVALID_ARGUMENT`. OTLP/HTTP accepts `application/x-protobuf`
//! and `application/json` (OTLP JSON: camelCase names, hex ids), gzip or
//! not, and answers in the request's encoding — error bodies are
//! `google.rpc.Status` messages. Other content types get `415`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::codec::CompressionEncoding;
use tonic::codegen::{Service, http};
use tonic::server::NamedService;

use super::push::{self, Rejection, resolve_tenant};
use crate::engine::Engine;
use crate::ingest::distributor::{Decoded, PushError};
use crate::ingest::limits::Limits;
use crate::ingest::otlp;
use crate::ingest::validate::now_ms;

/// The tenant metadata key of OTLP/gRPC requests (gRPC metadata keys are lower case).
pub const TENANT_METADATA: &str = "x-scope-orgid";

/// One OTLP signal: its request and response messages and converter.
pub trait OtlpSignal {
    type Request: Message + Default + serde::de::DeserializeOwned + Send + 'static;
    type Response: Message + serde::Serialize + Default + Send + 'static;
    /// What the signal's items are called in messages (`spans`, `log records`, `data points`).
    const ITEMS: &'static str;
    fn decode(request: Self::Request, limits: &Limits, now_ms: i64) -> Decoded;
    /// The response, with a partial success of `rejected` items when some were refused.
    fn response(partial: Option<(i64, String)>) -> Self::Response;
}

/// `/v1/traces`, `TraceService`.
pub struct Traces;
/// `/v1/logs`, `LogsService`.
pub struct Logs;
/// `/v1/metrics`, `MetricsService`.
pub struct Metrics;

impl OtlpSignal for Traces {
    type Request = ExportTraceServiceRequest;
    type Response = ExportTraceServiceResponse;
    const ITEMS: &'static str = "spans";
    fn decode(request: Self::Request, limits: &Limits, now_ms: i64) -> Decoded {
        otlp::decode_traces(request, limits, now_ms)
    }
    fn response(partial: Option<(i64, String)>) -> Self::Response {
        ExportTraceServiceResponse {
            partial_success: partial.map(|(rejected_spans, error_message)| {
                ExportTracePartialSuccess {
                    rejected_spans,
                    error_message,
                }
            }),
        }
    }
}

impl OtlpSignal for Logs {
    type Request = ExportLogsServiceRequest;
    type Response = ExportLogsServiceResponse;
    const ITEMS: &'static str = "log records";
    fn decode(request: Self::Request, limits: &Limits, now_ms: i64) -> Decoded {
        otlp::decode_logs(request, limits, now_ms)
    }
    fn response(partial: Option<(i64, String)>) -> Self::Response {
        ExportLogsServiceResponse {
            partial_success: partial.map(|(rejected_log_records, error_message)| {
                ExportLogsPartialSuccess {
                    rejected_log_records,
                    error_message,
                }
            }),
        }
    }
}

impl OtlpSignal for Metrics {
    type Request = ExportMetricsServiceRequest;
    type Response = ExportMetricsServiceResponse;
    const ITEMS: &'static str = "data points";
    fn decode(request: Self::Request, limits: &Limits, now_ms: i64) -> Decoded {
        otlp::decode_metrics(request, limits, now_ms)
    }
    fn response(partial: Option<(i64, String)>) -> Self::Response {
        ExportMetricsServiceResponse {
            partial_success: partial.map(|(rejected_data_points, error_message)| {
                ExportMetricsPartialSuccess {
                    rejected_data_points,
                    error_message,
                }
            }),
        }
    }
}

/// What became of an export request.
#[derive(Debug)]
pub enum Outcome {
    /// Everything was written.
    Accepted,
    /// The valid items were written; `rejected` were refused for `message`.
    Partial { rejected: i64, message: String },
    /// Nothing was written (rate limited, overloaded, write path failing).
    Failed(PushError),
}

/// Converts `request` for `tenant` and pushes it through the distributor.
pub async fn export<S: OtlpSignal>(engine: &Engine, tenant: &str, request: S::Request) -> Outcome {
    let limits = engine.distributor().limits().get(tenant);
    let decoded = S::decode(request, &limits, now_ms());
    let received = decoded.rows() + decoded.discards.total();
    match engine.distributor().push(tenant, decoded).await {
        Ok(_) => Outcome::Accepted,
        Err(PushError::Invalid { message, accepted }) => Outcome::Partial {
            rejected: i64::try_from(received.saturating_sub(accepted)).unwrap_or(i64::MAX),
            message,
        },
        Err(e) => Outcome::Failed(e),
    }
}

// ---------------------------------------------------------------- OTLP/HTTP

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// `google.rpc.Status`, the body of OTLP/HTTP error answers.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// The gRPC status code matching an HTTP status.
fn grpc_code(http_status: u16) -> tonic::Code {
    match http_status {
        400 | 413 | 415 => tonic::Code::InvalidArgument,
        401 => tonic::Code::Unauthenticated,
        429 => tonic::Code::ResourceExhausted,
        503 => tonic::Code::Unavailable,
        _ => tonic::Code::Internal,
    }
}

fn encoded(encoding: Encoding, status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, encoding.content_type())],
        body,
    )
        .into_response()
}

/// An error answer: `status` with a `google.rpc.Status` body in `encoding`.
fn error_reply(encoding: Encoding, status: u16, message: impl Into<String>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = RpcStatus {
        code: grpc_code(status.as_u16()) as i32,
        message: message.into(),
    };
    let bytes = match encoding {
        Encoding::Protobuf => body.encode_to_vec(),
        Encoding::Json => serde_json::to_vec(&body).unwrap_or_default(),
    };
    encoded(encoding, status, bytes)
}

/// Re-encodes a plain-text error answer of the shared push plumbing as an OTLP error.
fn as_otlp_error(encoding: Encoding, rejection: Rejection) -> Response {
    error_reply(encoding, rejection.status, rejection.message)
}

fn success<S: OtlpSignal>(encoding: Encoding, partial: Option<(i64, String)>) -> Response {
    let body = match (encoding, partial) {
        (Encoding::Protobuf, partial) => S::response(partial).encode_to_vec(),
        (Encoding::Json, None) => b"{}".to_vec(),
        (Encoding::Json, partial) => {
            serde_json::to_vec(&S::response(partial)).unwrap_or_else(|_| b"{}".to_vec())
        }
    };
    encoded(encoding, StatusCode::OK, body)
}

async fn http_export<S: OtlpSignal>(
    engine: &Engine,
    headers: &HeaderMap,
    raw: &Bytes,
    path: &str,
) -> Response {
    let encoding = match push::media_type(headers).as_str() {
        "application/x-protobuf" | "application/protobuf" | "" => Encoding::Protobuf,
        "application/json" => Encoding::Json,
        other => {
            return error_reply(
                Encoding::Protobuf,
                415,
                format!(
                    "unsupported Content-Type {other:?} for OTLP {path} (use application/x-protobuf or application/json)"
                ),
            );
        }
    };
    let push::Incoming { tenant, body, .. } = match push::incoming(engine, headers, raw, false) {
        Ok(r) => r,
        Err(r) => return as_otlp_error(encoding, r),
    };
    let request = match encoding {
        Encoding::Protobuf => S::Request::decode(body.as_slice())
            .map_err(|e| format!("malformed OTLP {path} request: the body is not a valid protobuf Export request: {e}")),
        Encoding::Json => serde_json::from_slice::<S::Request>(&body)
            .map_err(|e| format!("malformed OTLP {path} request: the body is not valid OTLP JSON: {e}")),
    };
    let request = match request {
        Ok(r) => r,
        Err(message) => return error_reply(encoding, 400, message),
    };
    match export::<S>(engine, &tenant, request).await {
        Outcome::Accepted => success::<S>(encoding, None),
        Outcome::Partial { rejected, message } => success::<S>(encoding, Some((rejected, message))),
        Outcome::Failed(e) => error_reply(encoding, e.http_status(), e.to_string()),
    }
}

/// `POST /v1/traces`: OTLP/HTTP spans.
pub async fn traces(State(engine): State<Arc<Engine>>, headers: HeaderMap, raw: Bytes) -> Response {
    http_export::<Traces>(&engine, &headers, &raw, "/v1/traces").await
}

/// `POST /v1/logs`: OTLP/HTTP log records.
pub async fn logs(State(engine): State<Arc<Engine>>, headers: HeaderMap, raw: Bytes) -> Response {
    http_export::<Logs>(&engine, &headers, &raw, "/v1/logs").await
}

/// `POST /v1/metrics`: OTLP/HTTP metrics.
pub async fn metrics(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    http_export::<Metrics>(&engine, &headers, &raw, "/v1/metrics").await
}

// ---------------------------------------------------------------- OTLP/gRPC

/// The three OTLP/gRPC services over one engine.
#[derive(Clone)]
pub struct OtlpGrpc {
    engine: Arc<Engine>,
}

impl OtlpGrpc {
    pub fn new(engine: Arc<Engine>) -> Self {
        OtlpGrpc { engine }
    }

    async fn export<S: OtlpSignal>(
        &self,
        request: tonic::Request<S::Request>,
    ) -> Result<tonic::Response<S::Response>, tonic::Status> {
        let value = request
            .metadata()
            .get(TENANT_METADATA)
            .map(|v| v.as_bytes());
        let tenant = resolve_tenant(&self.engine, value).map_err(|r| {
            tonic::Status::new(
                grpc_code(r.status),
                r.message.replace(push::TENANT_HEADER, TENANT_METADATA),
            )
        })?;
        match export::<S>(&self.engine, &tenant, request.into_inner()).await {
            Outcome::Accepted => Ok(tonic::Response::new(S::response(None))),
            Outcome::Partial { rejected, message } => {
                Ok(tonic::Response::new(S::response(Some((rejected, message)))))
            }
            Outcome::Failed(e) => Err(tonic::Status::new(
                grpc_code(e.http_status()),
                e.to_string(),
            )),
        }
    }
}

#[tonic::async_trait]
impl TraceService for OtlpGrpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        OtlpGrpc::export::<Traces>(self, request).await
    }
}

#[tonic::async_trait]
impl LogsService for OtlpGrpc {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        OtlpGrpc::export::<Logs>(self, request).await
    }
}

#[tonic::async_trait]
impl MetricsService for OtlpGrpc {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        OtlpGrpc::export::<Metrics>(self, request).await
    }
}

/// Wraps a generated service so that a request message that does not decode
/// is answered `INVALID_ARGUMENT` (OTLP: malformed data, do not retry)
/// instead of tonic's `INTERNAL`.
#[derive(Clone)]
struct MalformedIsInvalidArgument<S>(S);

impl<S: NamedService> NamedService for MalformedIsInvalidArgument<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> Service<http::Request<B>> for MalformedIsInvalidArgument<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let response = self.0.call(request);
        Box::pin(async move {
            let mut response = response.await?;
            let headers = response.headers_mut();
            let internal = headers.get("grpc-status").is_some_and(|v| v == "13");
            let malformed = headers
                .get("grpc-message")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|m| {
                    m.replace("%20", " ")
                        .starts_with("failed to decode Protobuf message")
                });
            if internal && malformed {
                headers.insert("grpc-status", http::HeaderValue::from_static("3"));
            }
            Ok(response)
        })
    }
}

/// Serves OTLP/gRPC on `listener` until `shutdown` fires.
pub async fn serve(
    listener: TcpListener,
    engine: Arc<Engine>,
    mut shutdown: watch::Receiver<bool>,
) {
    let max = usize::try_from(engine.config().server.max_request_body_bytes).unwrap_or(usize::MAX);
    let grpc = OtlpGrpc::new(engine);
    let traces = TraceServiceServer::new(grpc.clone())
        .max_decoding_message_size(max)
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip);
    let logs = LogsServiceServer::new(grpc.clone())
        .max_decoding_message_size(max)
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip);
    let metrics = MetricsServiceServer::new(grpc)
        .max_decoding_message_size(max)
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip);
    let result = tonic::transport::Server::builder()
        .add_service(MalformedIsInvalidArgument(traces))
        .add_service(MalformedIsInvalidArgument(logs))
        .add_service(MalformedIsInvalidArgument(metrics))
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener),
            async move {
                let _ = shutdown.changed().await;
            },
        )
        .await;
    if let Err(e) = result {
        tracing::error!("OTLP gRPC server failed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_are_rpc_status() {
        let body = RpcStatus {
            code: grpc_code(429) as i32,
            message: "slow down".into(),
        };
        let decoded = RpcStatus::decode(body.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded.code, 8);
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"code":8,"message":"slow down"}"#
        );
        assert_eq!(grpc_code(503), tonic::Code::Unavailable);
        assert_eq!(grpc_code(400), tonic::Code::InvalidArgument);
    }

    #[test]
    fn partial_success_json_uses_camel_case() {
        let r = Traces::response(Some((3, "bad ids".into())));
        let json = serde_json::to_string(&r).unwrap();
        assert!(
            json.contains("partialSuccess")
                && json.contains("rejectedSpans")
                && json.contains("errorMessage"),
            "{json}"
        );
    }

    #[test]
    fn otlp_json_requests_with_hex_ids_decode() {
        let body = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"web"}}]},
            "scopeSpans":[{"scope":{"name":"lib"},"spans":[{"traceId":"5b8efff798038103d269b633813fc60c",
            "spanId":"eee19b7ec3c1b174","parentSpanId":"eee19b7ec3c1b173","name":"GET /","kind":2,
            "startTimeUnixNano":"1767225600000000000","endTimeUnixNano":"1767225600100000000",
            "attributes":[{"key":"http.status","value":{"intValue":"200"}}],"status":{"code":1}}]}]}]}"#;
        let request: ExportTraceServiceRequest = serde_json::from_str(body).unwrap();
        let d = Traces::decode(request, &Limits::default(), 1_767_225_600_000);
        assert!(d.discards.is_empty(), "{:?}", d.discards);
        assert_eq!(d.rows(), 1);
        use arrow::array::AsArray;
        let b = &d.batches[0];
        let col = |n: &str| {
            b.column_by_name(n)
                .unwrap()
                .as_string::<i32>()
                .value(0)
                .to_string()
        };
        assert_eq!(col("trace_id"), "5b8efff798038103d269b633813fc60c");
        assert_eq!(col("span_id"), "eee19b7ec3c1b174");
        assert_eq!(col("parent_span_id"), "eee19b7ec3c1b173");
        assert_eq!(col("kind"), "server");
        assert_eq!(col("status_code"), "ok");
        assert_eq!(col("service"), "web");
    }
}
