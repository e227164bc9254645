//! The Postgres query handlers: simple and extended protocol over a tenant's
//! DataFusion session.
//!
//! A statement is parsed with the Postgres-compatibility parser, offered to
//! the session hooks (`SET`/`SHOW`, transactions, cursors), planned,
//! wrapped so nested columns come out as `jsonb` ([`super::encode`]) and
//! executed in a slot of the tenant's fair queue (the query frontend's,
//! held until the last row has gone) with the client's `statement_timeout`
//! and CancelRequest listened to. Every error leaves as an
//! `ErrorResponse` with its SQLSTATE and, where known, the position in the
//! query ([`super::errors`]).

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ParamValues;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{DdlStatement, DmlStatement, Expr, LogicalPlan, WriteOp};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DfParserStatement;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use datafusion_postgres::QueryHook;
use futures::{FutureExt, Sink, StreamExt};
use parking_lot::Mutex;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, Type};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::extendedquery::Execute;
use pgwire::types::format::FormatOptions;

use super::auth::{QueryCancel, SessionTenant};
use super::encode::{jsonify_plan, pg_fields, query_response};
use super::errors::{from_datafusion, from_parser, user_error};
use super::settings;
use crate::engine::Engine;
use crate::query::frontend::queue::Permit;

/// The statement type kept in the portal store (the hooks share it).
pub type PgStatement = (String, Option<(Statement, LogicalPlan)>);

/// Client metadata key the `SET statement_timeout` hook writes.
const STATEMENT_TIMEOUT_KEY: &str = "statement_timeout_ms";

pub struct PgBackend {
    engine: Arc<Engine>,
    connections: Arc<super::ConnectionWatch>,
    sessions: Mutex<HashMap<String, Arc<SessionContext>>>,
    sql_parser: PostgresCompatibilityParser,
    hooks: Vec<Arc<dyn QueryHook>>,
}

impl PgBackend {
    pub fn new(engine: Arc<Engine>, connections: Arc<super::ConnectionWatch>) -> Arc<Self> {
        Arc::new(PgBackend {
            engine,
            connections,
            sessions: Mutex::new(HashMap::new()),
            sql_parser: PostgresCompatibilityParser::new(),
            hooks: vec![
                Arc::new(datafusion_postgres::hooks::cursor::CursorStatementHook),
                Arc::new(datafusion_postgres::hooks::set_show::SetShowHook),
                Arc::new(datafusion_postgres::hooks::transactions::TransactionStatementHook),
            ],
        })
    }

    /// The tenant a Postgres session reads and writes, fixed at startup
    /// ([`super::auth`]).
    fn tenant_of<C: ClientInfo + ?Sized>(&self, client: &C) -> String {
        match client.session_extensions().get::<SessionTenant>() {
            Some(tenant) => tenant.0.clone(),
            None => self.engine.config().pgwire.default_tenant.clone(),
        }
    }

    /// The (cached) SQL session of a tenant, with the Postgres catalog on top.
    async fn session<C: ClientInfo + ?Sized>(
        &self,
        client: &C,
    ) -> PgWireResult<Arc<SessionContext>> {
        let tenant = self.tenant_of(client);
        if let Some(ctx) = self.sessions.lock().get(&tenant) {
            return Ok(ctx.clone());
        }
        let ctx = self
            .engine
            .session(&tenant)
            .await
            .map_err(|e| user_error("XX000", e.to_string()))?;
        super::catalog::install(&ctx)
            .await
            .map_err(|e| from_datafusion(&e, None))?;
        crate::query::promql::sql_function::register_within_slot(&ctx, &self.engine, &tenant);
        let ctx = Arc::new(ctx);
        self.sessions
            .lock()
            .entry(tenant)
            .or_insert_with(|| ctx.clone());
        Ok(ctx)
    }

    async fn plan(
        &self,
        ctx: &SessionContext,
        statement: &Statement,
        query: &str,
    ) -> PgWireResult<LogicalPlan> {
        let plan = ctx
            .state()
            .statement_to_plan(DfParserStatement::Statement(Box::new(statement.clone())))
            .await
            .map_err(|e| from_datafusion(&e, Some(query)))?;
        reject_user_ddl(&plan)?;
        Ok(plan)
    }

    /// The queue slot of the connection's statement. A connection runs one
    /// statement at a time, but the results of a multi-statement simple
    /// query (or a suspended portal) stay open while the next statement
    /// runs: statements of one connection share its slot, taken when none of
    /// them holds one, so a connection never waits for itself.
    async fn connection_slot<C: ClientInfo + ?Sized>(
        &self,
        client: &C,
        guard: &QueryGuard,
    ) -> PgWireResult<Arc<Permit>> {
        let shared = client
            .session_extensions()
            .get_or_insert_with(ConnectionSlot::default);
        if let Some(slot) = shared.0.lock().upgrade() {
            return Ok(slot);
        }
        let tenant = self.tenant_of(client);
        let slot = guard
            .run(async {
                self.engine
                    .frontend()
                    .slot(&tenant)
                    .await
                    .map_err(|full| user_error("53400", full.to_string()))
            })
            .await?;
        let slot = Arc::new(slot);
        *shared.0.lock() = Arc::downgrade(&slot);
        Ok(slot)
    }

    /// Runs a planned statement and builds its response.
    async fn execute<C>(
        &self,
        client: &C,
        ctx: &SessionContext,
        plan: LogicalPlan,
        format: &Format,
        query: &str,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ?Sized,
    {
        let timer = self.engine.metrics().query_timer("pgwire", "sql");
        let cancel = match client.session_extensions().get::<QueryCancel>() {
            Some(handle) => Some(handle.0.start_query().await.shared()),
            None => None,
        };
        let guard = QueryGuard {
            deadline: statement_timeout(client).map(|t| tokio::time::Instant::now() + t),
            closed: self.connections.closed_signal(client.socket_addr()),
            cancel,
        };
        let slot = self.connection_slot(client, &guard).await?;
        if let LogicalPlan::Dml(DmlStatement { op, .. }) = &plan {
            let tag = match op {
                WriteOp::Insert(_) => "INSERT",
                WriteOp::Update => "UPDATE",
                WriteOp::Delete => "DELETE",
                _ => "OK",
            };
            let run = async {
                let df = ctx
                    .execute_logical_plan(plan)
                    .await
                    .map_err(|e| from_datafusion(&e, Some(query)))?;
                df.collect()
                    .await
                    .map_err(|e| from_datafusion(&e, Some(query)))
            };
            let batches = guard.run(run).await?;
            drop(slot);
            let rows = batches
                .first()
                .and_then(|b| b.column_by_name("count"))
                .and_then(|c| c.as_any().downcast_ref::<arrow::array::UInt64Array>())
                .map_or(0, |a| a.value(0) as usize);
            let tag = if tag == "INSERT" {
                Tag::new(tag).with_oid(0).with_rows(rows)
            } else {
                Tag::new(tag).with_rows(rows)
            };
            return Ok(Response::Execution(tag));
        }
        let (plan, json) = jsonify_plan(plan).map_err(|e| from_datafusion(&e, Some(query)))?;
        let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
        let response = guard
            .run(query_response(
                ctx,
                plan,
                json,
                format,
                Some(options),
                Some(query.to_string()),
            ))
            .await?;
        Ok(Response::Query(timed(guard.rows(response), (timer, slot))))
    }
}

/// The rows of `response`, recording the query's duration and giving its
/// queue slot back when the last one has gone (or the client stopped reading).
fn timed(
    mut response: QueryResponse,
    timer: (crate::metrics::QueryTimer, Arc<Permit>),
) -> QueryResponse {
    let fields = response.row_schema();
    let rows = std::mem::replace(response.data_rows(), Box::pin(futures::stream::empty()));
    QueryResponse::new(
        fields,
        rows.map(move |row| {
            let _running = &timer;
            row
        }),
    )
}

/// The queue slot a connection's open statements share ([`PgBackend::connection_slot`]).
#[derive(Default)]
struct ConnectionSlot(Mutex<std::sync::Weak<Permit>>);

/// What stops a running statement: its `statement_timeout`, a
/// CancelRequest and its client going away.
#[derive(Clone)]
struct QueryGuard {
    deadline: Option<tokio::time::Instant>,
    closed: Option<tokio::sync::watch::Receiver<bool>>,
    /// Resolves `Ok` on CancelRequest (`Err` once the next statement starts).
    cancel: Option<futures::future::Shared<futures::channel::oneshot::Receiver<()>>>,
}

impl QueryGuard {
    /// Resolves with the error that stops the statement.
    async fn stopped(&self) -> PgWireError {
        let deadline = async {
            match self.deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        let closed = async {
            match self.closed.clone() {
                Some(mut rx) => {
                    let _ = rx.wait_for(|closed| *closed).await;
                }
                None => std::future::pending().await,
            }
        };
        let cancelled = async {
            if let Some(rx) = self.cancel.clone()
                && rx.await.is_ok()
            {
                return;
            }
            std::future::pending::<()>().await
        };
        tokio::select! {
            _ = deadline => timeout_error(),
            _ = closed => user_error("08006", "the client closed the connection"),
            _ = cancelled => user_error("57014", "canceling statement due to user request"),
        }
    }

    async fn run<T>(
        &self,
        fut: impl std::future::Future<Output = PgWireResult<T>>,
    ) -> PgWireResult<T> {
        tokio::select! {
            result = fut => result,
            error = self.stopped() => Err(error),
        }
    }

    /// Ends a response's row stream with the stopping error; dropping the
    /// underlying stream stops DataFusion's execution.
    fn rows(self, mut response: QueryResponse) -> QueryResponse {
        if self.deadline.is_none() && self.closed.is_none() && self.cancel.is_none() {
            return response;
        }
        let fields = response.row_schema();
        let rows = std::mem::replace(response.data_rows(), Box::pin(futures::stream::empty()));
        let stream = futures::stream::unfold((rows, Some(self)), |(mut rows, guard)| async move {
            let guard = guard?;
            tokio::select! {
                row = rows.next() => row.map(|r| (r, (rows, Some(guard)))),
                error = guard.stopped() => Some((Err(error), (rows, None))),
            }
        });
        QueryResponse::new(fields, stream)
    }
}

/// o11ydb's tables are defined by the server; user DDL would silently
/// create tables that vanish at restart, so it is refused.
fn reject_user_ddl(plan: &LogicalPlan) -> PgWireResult<()> {
    if let LogicalPlan::Ddl(ddl) = plan {
        let what = match ddl {
            DdlStatement::CreateMemoryTable(_) => "CREATE TABLE",
            DdlStatement::CreateView(_) => "CREATE VIEW",
            DdlStatement::CreateExternalTable(_) => "CREATE EXTERNAL TABLE",
            DdlStatement::DropTable(_) => "DROP TABLE",
            DdlStatement::DropView(_) => "DROP VIEW",
            _ => "this DDL statement",
        };
        return Err(user_error(
            "0A000",
            format!(
                "{what} is not supported: o11ydb's tables (logs, samples, spans) are managed by the server"
            ),
        ));
    }
    Ok(())
}

fn statement_timeout<C: ClientInfo + ?Sized>(client: &C) -> Option<Duration> {
    client
        .metadata()
        .get(STATEMENT_TIMEOUT_KEY)
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis)
}

fn timeout_error() -> PgWireError {
    user_error("57014", "canceling statement due to statement timeout")
}

#[async_trait]
impl SimpleQueryHandler for PgBackend {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statements =
            super::compat::parse(&self.sql_parser, query).map_err(|e| from_parser(&e, query))?;
        if statements.is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        let ctx = self.session(client).await?;
        let mut results = Vec::with_capacity(statements.len());
        'statements: for statement in statements {
            let statement = settings::confine_to_connection(statement)?;
            if let Some(plan) = settings::plan_show(&statement, client) {
                results.push(
                    self.execute(client, &ctx, plan?, &Format::UnifiedText, query)
                        .await?,
                );
                continue;
            }
            for hook in &self.hooks {
                if let Some(result) = hook.handle_simple_query(&statement, &ctx, client).await {
                    results.push(result?);
                    continue 'statements;
                }
            }
            let plan = self.plan(&ctx, &statement, query).await?;
            results.push(
                self.execute(client, &ctx, plan, &Format::UnifiedText, query)
                    .await?,
            );
        }
        Ok(results)
    }
}

/// Parses extended-protocol statements in the client's tenant session.
pub struct PgParser {
    backend: Arc<PgBackend>,
}

#[async_trait]
impl QueryParser for PgParser {
    type Statement = PgStatement;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<PgStatement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let backend = &self.backend;
        let mut statements =
            super::compat::parse(&backend.sql_parser, sql).map_err(|e| from_parser(&e, sql))?;
        if statements.is_empty() {
            return Ok(None);
        }
        let statement = settings::confine_to_connection(statements.remove(0))?;
        let ctx = backend.session(client).await?;
        if let Some(plan) = settings::plan_show(&statement, client) {
            return Ok(Some((sql.to_string(), Some((statement, plan?)))));
        }
        for hook in &backend.hooks {
            if let Some(plan) = hook
                .handle_extended_parse_query(&statement, &ctx, client)
                .await
            {
                return Ok(Some((sql.to_string(), Some((statement, plan?)))));
            }
        }
        let plan = backend.plan(&ctx, &statement, sql).await?;
        Ok(Some((sql.to_string(), Some((statement, plan)))))
    }

    fn get_parameter_types(&self, stmt: &PgStatement) -> PgWireResult<Vec<Type>> {
        match stmt {
            (_, Some((statement, plan))) => {
                let declared = super::compat::declared_parameter_types(statement);
                parameter_types(plan)?
                    .iter()
                    .enumerate()
                    .map(|(i, t)| super::compat::described_parameter_type(&declared, i, t.as_ref()))
                    .collect()
            }
            _ => Ok(vec![]),
        }
    }

    fn get_result_schema(
        &self,
        stmt: &PgStatement,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        let (_, Some((_, plan))) = stmt else {
            return Ok(vec![]);
        };
        if matches!(plan, LogicalPlan::Ddl(_) | LogicalPlan::Dml(_)) {
            return Ok(vec![]);
        }
        let (plan, json) = jsonify_plan(plan.clone()).map_err(|e| from_datafusion(&e, None))?;
        pg_fields(
            plan.schema().as_arrow(),
            &json,
            column_format.unwrap_or(&Format::UnifiedText),
            None,
        )
    }
}

/// The extended-protocol handler (it owns the parser the protocol asks for).
pub struct PgExtended {
    backend: Arc<PgBackend>,
    parser: Arc<PgParser>,
}

impl PgExtended {
    pub fn new(backend: Arc<PgBackend>) -> Self {
        PgExtended {
            parser: Arc::new(PgParser {
                backend: backend.clone(),
            }),
            backend,
        }
    }
}

#[async_trait]
impl ExtendedQueryHandler for PgExtended {
    type Statement = PgStatement;
    type QueryParser = PgParser;

    fn query_parser(&self) -> Arc<PgParser> {
        self.parser.clone()
    }

    /// Rows stream to the client instead of being fetched into memory first
    /// ([`super::execute`]).
    async fn on_execute<C>(&self, client: &mut C, message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = PgStatement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        super::execute::execute(self, client, message).await
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<PgStatement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = PgStatement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let (query, Some((statement, plan))) = &portal.statement.statement else {
            return Ok(Response::EmptyQuery);
        };
        let backend = &self.backend;
        let ctx = backend.session(client).await?;
        let inferred = parameter_types(plan)?;
        let inferred_refs: Vec<Option<&DataType>> = inferred.iter().map(|t| t.as_ref()).collect();
        let declared = super::compat::declared_parameter_types(statement);
        let normalised = super::compat::client_parameters(portal, &inferred, &declared);
        let params: ParamValues = arrow_pg::datatypes::df::deserialize_parameters(
            normalised.as_ref().unwrap_or(portal),
            &inferred_refs,
        )?;
        let answered_here = settings::plan_show(statement, client).is_some();
        for hook in backend.hooks.iter().filter(|_| !answered_here) {
            if let Some(result) = hook
                .handle_extended_query(statement, plan, &params, &ctx, client)
                .await
            {
                return result;
            }
        }
        let plan = plan
            .clone()
            .replace_params_with_values(&params)
            .map_err(|e| from_datafusion(&e, Some(query)))?;
        backend
            .execute(client, &ctx, plan, &portal.result_column_format, query)
            .await
    }
}

/// Parameter types of a plan in `$1, $2, ...` order: what DataFusion
/// inferred, else the type of an explicit cast around the placeholder
/// (`$1::jsonb` is text checked as JSON).
fn parameter_types(plan: &LogicalPlan) -> PgWireResult<Vec<Option<DataType>>> {
    let mut types = plan
        .get_parameter_types()
        .map_err(|e| from_datafusion(&e, None))?;
    if types.values().any(|t| t.is_none()) {
        let mut casts: HashMap<String, DataType> = HashMap::new();
        let mut seen = HashSet::new();
        let _ = plan.apply(|node| {
            for expr in node.expressions() {
                let _ = expr.apply(|e| {
                    if let Expr::Cast(cast) = e
                        && let Expr::Placeholder(p) = cast.expr.as_ref()
                        && seen.insert(p.id.clone())
                    {
                        casts.insert(p.id.clone(), cast.field.data_type().clone());
                    }
                    if let Expr::ScalarFunction(f) = e
                        && f.name().starts_with("pg_cast_json")
                        && let Some(Expr::Placeholder(p)) = f.args.first()
                        && seen.insert(p.id.clone())
                    {
                        casts.insert(p.id.clone(), DataType::Utf8);
                    }
                    Ok(TreeNodeRecursion::Continue)
                });
            }
            Ok(TreeNodeRecursion::Continue)
        });
        for (id, t) in types.iter_mut() {
            if t.is_none() {
                *t = casts.get(id).cloned();
            }
        }
    }
    let mut ordered: Vec<(usize, Option<DataType>)> = types
        .into_iter()
        .filter_map(|(id, t)| {
            id.trim_start_matches('$')
                .parse::<usize>()
                .ok()
                .map(|i| (i, t))
        })
        .collect();
    ordered.sort_by_key(|(i, _)| *i);
    let len = ordered.last().map_or(0, |(i, _)| *i);
    let mut out = vec![None; len];
    for (i, t) in ordered {
        if i >= 1 {
            out[i - 1] = t;
        }
    }
    Ok(out)
}
