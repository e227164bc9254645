//! The Flight SQL service: each RPC finds its tenant ([`super::auth`]),
//! takes that tenant's (cached) DataFusion session and answers from it.
//!
//! Queries run in two steps as Flight SQL prescribes: `GetFlightInfo`
//! plans the SQL for its schema and returns a ticket carrying the SQL
//! itself and a fresh query id (`TicketStatementQuery` holding a
//! [`StatementTicket`]), `DoGet` plans it again and streams the result
//! ([`super::statements`]). Prepared statements keep their SQL and bound
//! parameters server-side under a handle; their `FlightInfo` tickets carry
//! the handle and a query id. `CancelFlightInfo` (and Flight SQL's older
//! `CancelQuery` action) stops the `DoGet`s of a `FlightInfo`'s query id
//! ([`super::running`]). Metadata commands are answered by
//! [`super::metadata`].

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;

use arrow::ipc::writer::IpcWriteOptions;
use arrow::record_batch::RecordBatch;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionCancelQueryRequest, ActionCancelQueryResult, ActionClosePreparedStatementRequest,
    ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult, Command,
    CommandGetCatalogs, CommandGetDbSchemas, CommandGetPrimaryKeys, CommandGetSqlInfo,
    CommandGetTableTypes, CommandGetTables, CommandPreparedStatementQuery, CommandStatementIngest,
    CommandStatementQuery, CommandStatementUpdate, DoPutPreparedStatementResult, ProstMessageExt,
    SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    Action, ActionType, CancelFlightInfoRequest, CancelFlightInfoResult, CancelStatus,
    FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, IpcMessage,
    SchemaAsIpc, Ticket,
};
use bytes::Bytes;
use datafusion::prelude::SessionContext;
use futures::{Stream, StreamExt, TryStreamExt};
use parking_lot::Mutex;
use prost::Message;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

use super::auth::Auth;
use super::errors::{from_datafusion, from_engine, from_ingest};
use super::metadata;
use super::running::{RunningStatements, StatementTicket, cancelled_status};
use super::statements::{self, FlightStream, PreparedStatements};
use crate::engine::Engine;

type DoGetStream = <FlightSql as FlightService>::DoGetStream;

/// o11ydb's Flight SQL service.
pub struct FlightSql {
    engine: Arc<Engine>,
    auth: Auth,
    sessions: Mutex<HashMap<String, Arc<SessionContext>>>,
    prepared: PreparedStatements,
    running: Arc<RunningStatements>,
}

/// The core Flight action cancelling a `FlightInfo`'s query.
const CANCEL_FLIGHT_INFO: &str = "CancelFlightInfo";

impl FlightSql {
    pub fn new(engine: Arc<Engine>) -> Self {
        FlightSql {
            auth: Auth::new(engine.clone()),
            engine,
            sessions: Mutex::new(HashMap::new()),
            prepared: PreparedStatements::default(),
            running: Arc::default(),
        }
    }

    /// Cancels the statement behind `info`'s tickets for the caller's
    /// tenant: `Cancelled` once its running `DoGet`s are told to stop (and
    /// later ones refused), `NotCancellable` for a `FlightInfo` of a
    /// metadata command.
    fn cancel(&self, tenant: &str, info: &FlightInfo) -> Result<CancelStatus, Status> {
        if info.endpoint.is_empty() {
            return Err(Status::invalid_argument(
                "the FlightInfo to cancel has no endpoint: send the FlightInfo GetFlightInfo answered",
            ));
        }
        let mut status = CancelStatus::NotCancellable;
        for endpoint in &info.endpoint {
            let Some(ticket) = &endpoint.ticket else {
                continue;
            };
            let statement = arrow_flight::sql::Any::decode(&*ticket.ticket)
                .ok()
                .and_then(|any| any.unpack::<TicketStatementQuery>().ok().flatten());
            let Some(statement) = statement else {
                continue;
            };
            let ticket = StatementTicket::decode_handle(&statement.statement_handle)?;
            let stopped = self.running.cancel(tenant, &ticket.id);
            tracing::debug!(%tenant, id = %ticket.id, stopped, "flight statement cancel");
            status = CancelStatus::Cancelled;
        }
        Ok(status)
    }

    /// Answers the `CancelFlightInfo` action.
    fn cancel_flight_info(&self, request: &Request<Action>) -> Result<Bytes, Status> {
        let tenant = self.auth.tenant(request.metadata())?;
        let cancel = CancelFlightInfoRequest::decode(&*request.get_ref().body).map_err(|e| {
            Status::invalid_argument(format!(
                "CancelFlightInfo: the body is not a CancelFlightInfoRequest: {e}"
            ))
        })?;
        let info = cancel.info.ok_or_else(|| {
            Status::invalid_argument("CancelFlightInfo: the request carries no FlightInfo")
        })?;
        let status = self.cancel(&tenant, &info)?;
        Ok(CancelFlightInfoResult::new(status).encode_to_vec().into())
    }

    /// Runs the statement of a ticket this server issued: its SQL or
    /// prepared statement, registered under its id so that it can be
    /// cancelled.
    async fn run_statement(
        &self,
        ticket: StatementTicket,
        request: &Request<Ticket>,
    ) -> Result<DoGetStream, Status> {
        let timer = self.engine.metrics().query_timer("flight", "sql");
        let (tenant, ctx) = self.session(request).await?;
        let plan = if ticket.prepared_handle.is_empty() {
            statements::plan(&ctx, &ticket.sql).await?
        } else {
            let prepared = self.prepared.get(&ticket.prepared_handle, &tenant)?;
            let plan = statements::plan(&ctx, &prepared.sql).await?;
            statements::bind(plan, &prepared.params)?
        };
        let registration = self.running.start(&tenant, &ticket.id)?;
        // A cancel while the statement waits for its slot ends the wait.
        let slot = tokio::select! {
            slot = self.slot(&tenant) => slot?,
            _ = registration.cancelled() => return Err(cancelled_status()),
        };
        statements::execute(&ctx, plan, (timer, slot), Some(registration)).await
    }

    /// The tenant of `request` and its session.
    async fn session<T>(
        &self,
        request: &Request<T>,
    ) -> Result<(String, Arc<SessionContext>), Status> {
        let tenant = self.auth.tenant(request.metadata())?;
        if let Some(ctx) = self.sessions.lock().get(&tenant) {
            return Ok((tenant, ctx.clone()));
        }
        let ctx = self
            .engine
            .session(&tenant)
            .await
            .map_err(|e| from_engine(&e))?;
        crate::query::promql::sql_function::register_within_slot(&ctx, &self.engine, &tenant);
        let ctx = Arc::new(ctx);
        let ctx = self
            .sessions
            .lock()
            .entry(tenant.clone())
            .or_insert(ctx)
            .clone();
        Ok((tenant, ctx))
    }

    /// A slot of `tenant`'s fair queue, held while a statement runs
    /// (`RESOURCE_EXHAUSTED` when the tenant's queue is full).
    async fn slot(&self, tenant: &str) -> Result<crate::query::frontend::queue::Permit, Status> {
        self.engine
            .frontend()
            .slot(tenant)
            .await
            .map_err(|full| Status::resource_exhausted(full.to_string()))
    }

    /// A `FlightInfo` whose one endpoint's ticket is `ticket`.
    fn info(
        schema: &arrow::datatypes::Schema,
        ticket: Vec<u8>,
        descriptor: FlightDescriptor,
    ) -> Result<Response<FlightInfo>, Status> {
        let info = FlightInfo::new()
            .try_with_schema(schema)
            .map_err(|e| Status::internal(format!("cannot encode the schema: {e}")))?
            .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket)))
            .with_descriptor(descriptor);
        Ok(Response::new(info))
    }

    /// The FlightInfo of a metadata command for an authenticated caller:
    /// the command itself is the ticket.
    fn command_info(
        &self,
        schema: &arrow::datatypes::Schema,
        command: arrow_flight::sql::Any,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.auth.tenant(request.metadata())?;
        Self::info(schema, command.encode_to_vec(), request.into_inner())
    }

    fn batch_stream(batch: RecordBatch) -> Response<DoGetStream> {
        Response::new(statements::encode(
            batch.schema(),
            futures::stream::once(async move { Ok(batch) }),
        ))
    }
}

fn ipc_schema(schema: &arrow::datatypes::Schema) -> Result<bytes::Bytes, Status> {
    let IpcMessage(bytes) = SchemaAsIpc::new(schema, &IpcWriteOptions::default())
        .try_into()
        .map_err(|e: arrow::error::ArrowError| {
            Status::internal(format!("cannot encode the schema: {e}"))
        })?;
    Ok(bytes)
}

#[tonic::async_trait]
impl FlightSqlService for FlightSql {
    type FlightService = FlightSql;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        let (tenant, token) = self.auth.handshake(request.metadata())?;
        tracing::debug!(%tenant, "flight handshake");
        let answer = HandshakeResponse {
            protocol_version: 0,
            payload: token.clone().into(),
        };
        let mut response: Response<Pin<Box<dyn Stream<Item = _> + Send>>> =
            Response::new(Box::pin(futures::stream::iter([Ok(answer)])));
        let bearer = MetadataValue::try_from(format!("Bearer {token}"))
            .map_err(|e| Status::internal(format!("cannot send the token: {e}")))?;
        response.metadata_mut().insert("authorization", bearer);
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let (_, ctx) = self.session(&request).await?;
        let plan = statements::plan(&ctx, &query.query).await?;
        let schema = statements::flight_schema(Arc::new(plan.schema().as_arrow().clone()));
        let ticket = TicketStatementQuery {
            statement_handle: StatementTicket::sql(&query.query).encode_to_vec().into(),
        };
        Self::info(
            &schema,
            ticket.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let ticket = StatementTicket::decode_handle(&ticket.statement_handle)?;
        Ok(Response::new(self.run_statement(ticket, &request).await?))
    }

    async fn do_put_statement_update(
        &self,
        command: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let (tenant, ctx) = self.session(&request).await?;
        let plan = statements::plan(&ctx, &command.query).await?;
        let _slot = self.slot(&tenant).await?;
        let batches = ctx
            .execute_logical_plan(plan)
            .await
            .map_err(|e| from_datafusion(&e))?
            .collect()
            .await
            .map_err(|e| from_datafusion(&e))?;
        Ok(affected_rows(&batches))
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let (tenant, ctx) = self.session(&request).await?;
        let plan = statements::plan(&ctx, &query.query).await?;
        let dataset = statements::flight_schema(Arc::new(plan.schema().as_arrow().clone()));
        let parameters = statements::parameter_schema(&plan)?;
        let handle = self.prepared.create(&tenant, &query.query)?;
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.into(),
            dataset_schema: ipc_schema(&dataset)?,
            parameter_schema: ipc_schema(&parameters)?,
        })
    }

    async fn do_put_statement_ingest(
        &self,
        command: CommandStatementIngest,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let tenant = self.auth.tenant(request.metadata())?;
        let signal: crate::model::Signal = command.table.parse().map_err(|_| {
            Status::invalid_argument(format!(
                "cannot ingest into {:?}: the tables are logs, samples and spans",
                command.table
            ))
        })?;
        if command.temporary {
            return Err(Status::invalid_argument(
                "temporary tables are not supported; ingest into logs, samples or spans",
            ));
        }
        let sink = crate::catalog::insert::IngestSink::new(
            &tenant,
            signal,
            self.engine.distributor().clone(),
        );
        let mut batches = FlightRecordBatchStream::new_from_flight_data(
            request.into_inner().map_err(FlightError::from),
        );
        // The whole stream is read, checked and normalised before anything
        // is written: a bad batch anywhere fails the call with nothing of it
        // stored, and memory is bounded by the request size limit.
        let limit = self.engine.config().server.max_request_body_bytes;
        let mut bytes = 0u64;
        let mut normalized = Vec::new();
        while let Some(batch) = batches.next().await {
            let number = normalized.len() + 1;
            let batch = batch.map_err(|e| {
                Status::invalid_argument(format!(
                    "cannot read batch {number} of the stream: {e}; nothing was written"
                ))
            })?;
            bytes += batch.get_array_memory_size() as u64;
            if bytes > limit {
                return Err(Status::resource_exhausted(format!(
                    "the DoPut stream holds over {limit} bytes of Arrow data at batch {number} \
                     (server.max_request_body_bytes); nothing was written: split the rows over \
                     several DoPut calls"
                )));
            }
            let batch = sink
                .conform(&batch)
                .and_then(|b| sink.normalize(&b))
                .map_err(|e| in_batch(number, &e))?;
            normalized.push(batch);
        }
        let rows = sink
            .write_normalized(normalized)
            .await
            .map_err(|e| from_ingest(&e))?;
        Ok(rows as i64)
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let tenant = self.auth.tenant(request.metadata())?;
        // Check the handle before reading the values.
        self.prepared
            .get(&query.prepared_statement_handle, &tenant)?;
        let batches: Vec<RecordBatch> = FlightRecordBatchStream::new_from_flight_data(
            request.into_inner().map_err(FlightError::from),
        )
        .try_collect()
        .await
        .map_err(|e| Status::invalid_argument(format!("cannot read the bound parameters: {e}")))?;
        let params = statements::parameter_row(&batches)?;
        self.prepared
            .bind(&query.prepared_statement_handle, &tenant, params)?;
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(query.prepared_statement_handle),
        })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let (tenant, ctx) = self.session(&request).await?;
        let prepared = self
            .prepared
            .get(&query.prepared_statement_handle, &tenant)?;
        let plan = statements::plan(&ctx, &prepared.sql).await?;
        let plan = statements::bind(plan, &prepared.params)?;
        let schema = statements::flight_schema(Arc::new(plan.schema().as_arrow().clone()));
        let ticket = TicketStatementQuery {
            statement_handle: StatementTicket::prepared(&query.prepared_statement_handle)
                .encode_to_vec()
                .into(),
        };
        Self::info(
            &schema,
            ticket.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let timer = self.engine.metrics().query_timer("flight", "sql");
        let (tenant, ctx) = self.session(&request).await?;
        let prepared = self
            .prepared
            .get(&query.prepared_statement_handle, &tenant)?;
        let plan = statements::plan(&ctx, &prepared.sql).await?;
        let plan = statements::bind(plan, &prepared.params)?;
        let slot = self.slot(&tenant).await?;
        let stream: FlightStream = statements::execute(&ctx, plan, (timer, slot), None).await?;
        Ok(Response::new(stream))
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        let tenant = self.auth.tenant(request.metadata())?;
        self.prepared
            .close(&query.prepared_statement_handle, &tenant)
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.command_info(
            &query.clone().into_builder(metadata::sql_info()).schema(),
            query.as_any(),
            request,
        )
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.auth.tenant(request.metadata())?;
        let batch = query
            .into_builder(metadata::sql_info())
            .build()
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Self::batch_stream(batch))
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.command_info(&query.into_builder().schema(), query.as_any(), request)
    }

    async fn do_get_catalogs(
        &self,
        _query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let (_, ctx) = self.session(&request).await?;
        Ok(Self::batch_stream(metadata::catalogs(&ctx)?))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.command_info(
            &query.clone().into_builder().schema(),
            query.as_any(),
            request,
        )
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let (_, ctx) = self.session(&request).await?;
        Ok(Self::batch_stream(metadata::db_schemas(&ctx, query)?))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.command_info(
            &query.clone().into_builder().schema(),
            query.as_any(),
            request,
        )
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let (_, ctx) = self.session(&request).await?;
        Ok(Self::batch_stream(metadata::tables(&ctx, query).await?))
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.command_info(&query.into_builder().schema(), query.as_any(), request)
    }

    async fn do_get_table_types(
        &self,
        _query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.auth.tenant(request.metadata())?;
        Ok(Self::batch_stream(metadata::table_types()?))
    }

    async fn get_flight_info_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.command_info(&metadata::primary_keys_schema(), query.as_any(), request)
    }

    async fn do_get_primary_keys(
        &self,
        _query: CommandGetPrimaryKeys,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.auth.tenant(request.metadata())?;
        Ok(Self::batch_stream(RecordBatch::new_empty(
            metadata::primary_keys_schema(),
        )))
    }

    async fn do_action_cancel_query(
        &self,
        query: ActionCancelQueryRequest,
        request: Request<Action>,
    ) -> Result<ActionCancelQueryResult, Status> {
        let tenant = self.auth.tenant(request.metadata())?;
        let info = FlightInfo::decode(query.info).map_err(|e| {
            Status::invalid_argument(format!("CancelQuery: the info is not a FlightInfo: {e}"))
        })?;
        // CancelQuery's result values are those of CancelStatus.
        Ok(ActionCancelQueryResult {
            result: self.cancel(&tenant, &info)? as i32,
        })
    }

    async fn do_action_fallback(
        &self,
        request: Request<Action>,
    ) -> Result<Response<<Self as FlightService>::DoActionStream>, Status> {
        if request.get_ref().r#type == CANCEL_FLIGHT_INFO {
            let body = self.cancel_flight_info(&request)?;
            let answer = arrow_flight::Result { body };
            return Ok(Response::new(Box::pin(futures::stream::iter([Ok(answer)]))));
        }
        Err(Status::invalid_argument(format!(
            "action {:?} is not supported; o11ydb answers the Flight SQL actions and {CANCEL_FLIGHT_INFO}",
            request.get_ref().r#type
        )))
    }

    async fn list_custom_actions(&self) -> Option<Vec<Result<ActionType, Status>>> {
        Some(vec![Ok(ActionType {
            r#type: CANCEL_FLIGHT_INFO.into(),
            description: "Cancels the query of a FlightInfo: its DoGet streams end with CANCELLED\n
                Request Message: CancelFlightInfoRequest\n
                Response Message: CancelFlightInfoResult"
                .into(),
        })])
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}

    async fn get_flight_info_fallback(
        &self,
        command: Command,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        Err(unsupported("GetFlightInfo", command.into_any()))
    }

    async fn do_get_fallback(
        &self,
        _request: Request<Ticket>,
        message: arrow_flight::sql::Any,
    ) -> Result<Response<DoGetStream>, Status> {
        Err(unsupported("DoGet", message))
    }

    async fn do_put_fallback(
        &self,
        _request: Request<PeekableFlightDataStream>,
        message: arrow_flight::sql::Any,
    ) -> Result<Response<<Self as FlightService>::DoPutStream>, Status> {
        Err(unsupported("DoPut", message))
    }
}

/// The status of a command o11ydb does not serve: `INVALID_ARGUMENT` for
/// a message that is no Flight SQL command at all, `UNIMPLEMENTED` for a
/// Flight SQL command this server does not implement for `rpc`.
fn unsupported(rpc: &str, message: arrow_flight::sql::Any) -> Status {
    let type_url = message.type_url.clone();
    match Command::try_from(message) {
        Ok(Command::Unknown(_)) | Err(_) => Status::invalid_argument(format!(
            "{rpc}: {type_url:?} is not a Flight SQL command (expected an \
             arrow.flight.protocol.sql.* message packed in google.protobuf.Any)"
        )),
        Ok(_) => Status::unimplemented(format!(
            "{rpc}: {type_url} is not supported by o11ydb (see docs/flight.md)"
        )),
    }
}

/// The status of batch `number` of a DoPut stream refused by `err`.
fn in_batch(number: usize, err: &crate::error::Error) -> Status {
    let status = from_ingest(err);
    Status::new(
        status.code(),
        format!("batch {number}: {}; nothing was written", status.message()),
    )
}

/// The row count of a DML statement's result (`count` column), 0 otherwise.
fn affected_rows(batches: &[RecordBatch]) -> i64 {
    batches
        .first()
        .and_then(|b| b.column_by_name("count"))
        .and_then(|c| c.as_any().downcast_ref::<arrow::array::UInt64Array>())
        .map_or(0, |a| a.value(0) as i64)
}
