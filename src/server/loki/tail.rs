//! `GET /loki/api/v1/tail` — live tailing over a websocket, as Loki does:
//! the entries since `start` (default one hour ago, at most `limit`) first,
//! then every second the entries that arrived since the newest one sent,
//! each batch a text message `{"streams":[…],"dropped_entries":null}`.
//! `delay_for` (seconds, ≤ 5) holds entries back that long so late writes
//! still arrive in order. The socket closes when the client goes away or
//! the query fails (the reason in the close frame).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::{bad, parse_timestamp, respond, session};
use crate::engine::Engine;
use crate::query::logql::{self, Direction, LogStream, ast};
use crate::server::prometheus::json::JsonWriter;

/// Loki's limit on `delay_for`.
const MAX_DELAY_SECONDS: i64 = 5;
const POLL: Duration = Duration::from_secs(1);

#[derive(Debug, serde::Deserialize)]
pub struct TailParams {
    query: Option<String>,
    start: Option<String>,
    limit: Option<usize>,
    delay_for: Option<i64>,
}

pub async fn tail(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Query(params): Query<TailParams>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let text = params.query.clone().unwrap_or_default();
    let log = match logql::parse(&text) {
        Ok(ast::Expr::Log(log)) => log,
        Ok(ast::Expr::Metric(_)) => {
            return respond(Err(bad("tail requires a log query, got a metric query")));
        }
        Err(e) => return respond(Err(bad(e.to_string()))),
    };
    let delay = params.delay_for.unwrap_or(0);
    if !(0..=MAX_DELAY_SECONDS).contains(&delay) {
        return respond(Err(bad(format!(
            "delay_for can't be greater than {MAX_DELAY_SECONDS}"
        ))));
    }
    let options = super::options(&engine);
    let limit = params.limit.unwrap_or(super::DEFAULT_LIMIT);
    if limit > options.max_entries {
        return respond(Err(bad(format!(
            "max entries limit per query exceeded, limit > max_entries_limit_per_query ({limit} > {})",
            options.max_entries
        ))));
    }
    let now = super::now_ns();
    let start = match params.start.as_deref() {
        Some(v) => match parse_timestamp(v) {
            Ok(t) => t,
            Err(e) => return respond(Err(bad(e))),
        },
        None => now - 3_600_000_000_000,
    };
    let ctx = match session(&engine, &headers).await {
        Ok(ctx) => ctx,
        Err(e) => return respond(Err(e)),
    };
    upgrade
        .on_upgrade(move |socket| async move {
            let tailer = Tailer {
                ctx,
                text,
                expr: ast::Expr::Log(log),
                limit,
                delay_ns: delay * 1_000_000_000,
                options,
            };
            tailer.run(socket, start).await;
        })
        .into_response()
}

struct Tailer {
    ctx: datafusion::prelude::SessionContext,
    text: String,
    expr: ast::Expr,
    limit: usize,
    delay_ns: i64,
    options: logql::LogqlOptions,
}

impl Tailer {
    async fn run(self, mut socket: WebSocket, start: i64) {
        // Entries up to `sent_until` (inclusive) have been sent.
        let mut from = start;
        let mut first = true;
        loop {
            let until = super::now_ns() - self.delay_ns;
            if until > from {
                // Historic entries: the newest `limit`; afterwards everything new, oldest first.
                let (direction, limit) = if first {
                    (Direction::Backward, self.limit)
                } else {
                    (Direction::Forward, self.options.max_entries)
                };
                let value = logql::query_range(
                    &self.ctx,
                    &self.text,
                    &self.expr,
                    &logql::RangeRequest {
                        start_ns: from,
                        end_ns: until,
                        step_ns: 1,
                        limit,
                        direction,
                        interval_ns: 0,
                    },
                    &self.options,
                )
                .await;
                match value {
                    Ok(logql::LogqlValue::Streams(streams)) => {
                        if !streams.is_empty() {
                            let message = tail_message(&streams, direction);
                            if socket.send(Message::Text(message.into())).await.is_err() {
                                return;
                            }
                        }
                        from = until;
                    }
                    Ok(_) => return,
                    Err(e) => {
                        let _ = socket
                            .send(Message::Close(Some(CloseFrame {
                                code: axum::extract::ws::close_code::ERROR,
                                reason: e.to_string().chars().take(120).collect::<String>().into(),
                            })))
                            .await;
                        return;
                    }
                }
                first = false;
            }
            // Wait for the next poll, noticing a client that went away.
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                message = socket.recv() => match message {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                    Some(Ok(_)) => {}
                },
            }
        }
    }
}

/// `{"streams":[{"stream":{…},"values":[["<ns>","<line>"],…]}],"dropped_entries":null}`
/// with each stream's entries oldest first.
fn tail_message(streams: &[LogStream], direction: Direction) -> String {
    let mut w = JsonWriter::new();
    w.raw("{").key("streams");
    super::json::streams_array(&mut w, streams, direction == Direction::Backward);
    w.raw(",").key("dropped_entries").raw("null}");
    w.finish()
}
