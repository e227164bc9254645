//! The extended protocol's `Execute`: a portal's rows stream to the client
//! as DataFusion produces them.
//!
//! `pgwire`'s default `on_execute` fetches a portal's rows into a `Vec`
//! before sending any — with `max_rows = 0` (what psycopg, asyncpg, pgjdbc
//! and node-postgres send) that is the whole result, so the server held
//! every row of a 10 M-row `SELECT` in memory at once. Here the rows go to
//! the connection's sink one by one (its write buffer flushes, and waits on
//! the socket, past a few KiB), so memory stays at a batch or two whatever
//! the result size and a slow client slows the query instead. Everything
//! else follows `pgwire`'s default: portal states (a portal suspended by
//! `max_rows` resumes on the next `Execute`), the command tag with the row
//! count, `PortalSuspended`, transaction status.

use std::fmt::Debug;

use futures::{Sink, SinkExt, StreamExt};
use pgwire::api::portal::PortalExecutionState;
use pgwire::api::query::{ExtendedQueryHandler, send_execution_response};
use pgwire::api::results::{Response, Tag};
use pgwire::api::store::{Entry, PortalStore};
use pgwire::api::{ClientInfo, ClientPortalStore, DEFAULT_NAME, PgWireConnectionState};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::extendedquery::{Execute, PortalSuspended};
use pgwire::messages::response::EmptyQueryResponse;

use super::errors::user_error;

/// Runs (or resumes) the portal `message` names and streams its rows.
pub async fn execute<H, C>(handler: &H, client: &mut C, message: Execute) -> PgWireResult<()>
where
    H: ExtendedQueryHandler + ?Sized,
    C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
    C::PortalStore: PortalStore<Statement = H::Statement>,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
        return Err(PgWireError::NotReadyForQuery);
    }
    let mut transaction_status = client.transaction_status();
    client.set_state(PgWireConnectionState::QueryInProgress);

    let portal_name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
    let max_rows = message.max_rows.max(0) as usize;
    let portal = match client.portal_store().get_portal(portal_name) {
        Some(Entry::Value(portal)) => portal,
        Some(Entry::Empty) => {
            client
                .feed(PgWireBackendMessage::EmptyQueryResponse(
                    EmptyQueryResponse::new(),
                ))
                .await?;
            client.set_state(PgWireConnectionState::ReadyForQuery);
            return Ok(());
        }
        None => return Err(PgWireError::PortalNotFound(portal_name.to_owned())),
    };

    let state = portal.state();
    let mut state = state.lock().await;
    let mut transaction_ended = false;
    if matches!(*state, PortalExecutionState::Initial) {
        match handler.do_query(client, portal.as_ref(), max_rows).await? {
            Response::Query(results) => *state = PortalExecutionState::Suspended(results),
            Response::EmptyQuery => {
                client
                    .feed(PgWireBackendMessage::EmptyQueryResponse(
                        EmptyQueryResponse::new(),
                    ))
                    .await?;
            }
            Response::Execution(tag) => send_execution_response(client, tag).await?,
            Response::TransactionStart(tag) => {
                send_execution_response(client, tag).await?;
                transaction_status = transaction_status.to_in_transaction_state();
            }
            Response::TransactionEnd(tag) => {
                send_execution_response(client, tag).await?;
                transaction_status = transaction_status.to_idle_state();
                // The unnamed portal ends with the transaction.
                transaction_ended = true;
            }
            Response::Error(err) => {
                client
                    .send(PgWireBackendMessage::ErrorResponse((*err).into()))
                    .await?;
                transaction_status = transaction_status.to_error_state();
            }
            Response::CopyIn(_) | Response::CopyOut(_) | Response::CopyBoth(_) => {
                return Err(user_error("0A000", "COPY is not supported"));
            }
        }
    }

    match &mut *state {
        PortalExecutionState::Suspended(response) => {
            let command_tag = response.command_tag().to_owned();
            let rows = response.data_rows();
            let mut sent = 0;
            let mut exhausted = false;
            while max_rows == 0 || sent < max_rows {
                match rows.next().await {
                    Some(row) => {
                        client.feed(PgWireBackendMessage::DataRow(row?)).await?;
                        sent += 1;
                    }
                    None => {
                        exhausted = true;
                        break;
                    }
                }
            }
            if exhausted {
                *state = PortalExecutionState::Finished;
                let tag = Tag::new(&command_tag).with_rows(sent);
                client
                    .send(PgWireBackendMessage::CommandComplete(tag.into()))
                    .await?;
            } else {
                client
                    .send(PgWireBackendMessage::PortalSuspended(PortalSuspended::new()))
                    .await?;
            }
        }
        // A finished portal executed again answers no rows, as pgwire does.
        PortalExecutionState::Finished => {
            client
                .send(PgWireBackendMessage::CommandComplete(
                    Tag::new("SELECT").with_rows(0).into(),
                ))
                .await?;
        }
        PortalExecutionState::Initial => {}
    }
    drop(state);
    if transaction_ended {
        client.portal_store().rm_portal(DEFAULT_NAME);
    }
    if !matches!(client.state(), PgWireConnectionState::CopyInProgress(_)) {
        client.set_state(PgWireConnectionState::ReadyForQuery);
        client.set_transaction_status(transaction_status);
    }
    Ok(())
}
