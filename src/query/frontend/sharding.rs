//! Query sharding in the frontend (Mimir's and Loki's
//! `query_sharding_total_shards`): a query with shardable aggregations —
//! PromQL by series ([`crate::query::promql::shard`]), LogQL metric queries
//! by stream ([`crate::query::logql::shard`]) — runs, in every time part,
//! as one query per leg and shard, each restricted to its shard's series or
//! streams and each through the tenant's fair queue like a time part, and
//! the shards' answers are merged by evaluating the outer expression over
//! them. Both languages go through the same machinery ([`ShardedQuery`],
//! [`QueryFrontend::split_and_cache_pieces`]). Range queries keep their
//! time splitting and results cache: a part's merged answer is cached,
//! under the same key as unsharded (the answer is the same). Queries with
//! nothing shardable, and tenants with sharding off, take the unsharded
//! path; so does a LogQL query whose legs meet lines that would make the
//! merge differ ([`LogqlError::ShardingUnsafe`]).

use std::sync::Arc;

use datafusion::prelude::SessionContext;
use futures::future::BoxFuture;
use promql_parser::parser::Expr;

use super::{
    FrontendError, Pieces, QueryFrontend, RangeQuery, SHARDED_QUERIES, SHARDING_FALLBACKS,
    logql_parts, promql_parts,
};
use crate::ingest::limits::Limits;
use crate::query::logql::{self, LogqlError, LogqlOptions, ast::MetricExpr};
use crate::query::promql::shard::{QueryShard, ShardPlan, plan};
use crate::query::promql::{
    Grid, PromError, QueryOptions, QueryOutput, QueryValue, evaluate_shard_leg,
    evaluate_shard_merge, instant_query,
};

/// A tenant's sharding limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardingLimits {
    /// Shards a shardable query is split into (0 or 1: no sharding).
    pub total_shards: usize,
    /// Most shard queries one query may run over all its time parts and
    /// legs (0 = unlimited); fewer shards are used to stay within it.
    pub max_sharded_queries: usize,
}

impl ShardingLimits {
    pub fn of(limits: &Limits) -> Self {
        ShardingLimits {
            total_shards: limits.query_sharding_total_shards as usize,
            max_sharded_queries: limits.query_sharding_max_sharded_queries as usize,
        }
    }

    /// The shards each leg of a query of `parts` time parts and `legs`
    /// legs runs with; below 2, the query is not sharded.
    pub fn shards_for(&self, parts: usize, legs: usize) -> usize {
        let mut shards = self.total_shards;
        if self.max_sharded_queries > 0 {
            shards = shards.min(self.max_sharded_queries / (parts * legs).max(1));
        }
        shards
    }
}

/// The shards each leg of a query with `legs` legs runs on, if it is
/// sharded: `None` when the tenant's limits leave fewer than 2.
fn shard_count(limits: ShardingLimits, parts: usize, legs: usize) -> Option<usize> {
    let shards = limits.shards_for(parts, legs);
    (limits.total_shards >= 2 && legs > 0 && shards >= 2).then_some(shards)
}

/// The plan and shard count a PromQL query runs with, if it is sharded.
fn sharded(expr: &Expr, limits: ShardingLimits, parts: usize) -> Option<(ShardPlan, usize)> {
    if limits.total_shards < 2 {
        return None;
    }
    let plan = plan(expr)?;
    let shards = shard_count(limits, parts, plan.legs.len())?;
    Some((plan, shards))
}

/// A sharded query of either language: how one leg runs on one shard over
/// a time part `start..=end` (on the query's grid), and how a part's
/// answers of every leg on every shard merge.
pub(crate) trait ShardedQuery: Send + Sync + 'static {
    type Error: Send + 'static;

    /// Leg `leg` restricted to `shard`.
    fn leg(
        self: Arc<Self>,
        leg: usize,
        shard: QueryShard,
        start: i64,
        end: i64,
    ) -> BoxFuture<'static, Result<QueryOutput, Self::Error>>;

    /// The part's answer from `legs[k]`, leg `k`'s answers shard by shard.
    fn merge(
        self: Arc<Self>,
        start: i64,
        end: i64,
        legs: Vec<Vec<QueryOutput>>,
    ) -> BoxFuture<'static, Result<QueryOutput, Self::Error>>;
}

/// The pieces of a sharded query's time part: piece `k × shards + i` is
/// leg `k` on shard `i`; the combination merges them.
#[allow(clippy::type_complexity)]
fn shard_pieces<S: ShardedQuery>(
    query: Arc<S>,
    legs: usize,
    shards: usize,
) -> Pieces<
    impl Fn(usize, i64, i64) -> BoxFuture<'static, Result<QueryOutput, S::Error>>,
    impl Fn(i64, i64, Vec<QueryOutput>) -> BoxFuture<'static, Result<QueryOutput, S::Error>>,
> {
    let run = {
        let query = query.clone();
        move |piece: usize, start: i64, end: i64| {
            let shard = QueryShard {
                index: (piece % shards) as u64,
                total: shards as u64,
            };
            query.clone().leg(piece / shards, shard, start, end)
        }
    };
    let combine = move |start: i64, end: i64, outputs: Vec<QueryOutput>| {
        let mut outputs = outputs.into_iter();
        let by_leg: Vec<Vec<QueryOutput>> = (0..legs)
            .map(|_| outputs.by_ref().take(shards).collect())
            .collect();
        query.clone().merge(start, end, by_leg)
    };
    Pieces {
        count: legs * shards,
        run,
        combine: Some(combine),
    }
}

/// A PromQL query's legs and merge ([`ShardPlan`]) on a grid.
struct PromqlShards {
    ctx: SessionContext,
    text: String,
    plan: ShardPlan,
    options: QueryOptions,
    step: i64,
    instant: bool,
}

impl PromqlShards {
    fn grid(&self, start: i64, end: i64) -> Grid {
        if self.instant {
            Grid {
                start,
                end: start,
                step: 1,
                instant: true,
            }
        } else {
            Grid {
                start,
                end,
                step: self.step,
                instant: false,
            }
        }
    }
}

impl ShardedQuery for PromqlShards {
    type Error = PromError;

    fn leg(
        self: Arc<Self>,
        leg: usize,
        shard: QueryShard,
        start: i64,
        end: i64,
    ) -> BoxFuture<'static, Result<QueryOutput, PromError>> {
        Box::pin(async move {
            let leg_query = self.plan.leg_query(leg, shard);
            let grid = self.grid(start, end);
            evaluate_shard_leg(&self.ctx, &leg_query, &self.text, grid, &self.options).await
        })
    }

    fn merge(
        self: Arc<Self>,
        start: i64,
        end: i64,
        legs: Vec<Vec<QueryOutput>>,
    ) -> BoxFuture<'static, Result<QueryOutput, PromError>> {
        Box::pin(async move {
            let grid = self.grid(start, end);
            evaluate_shard_merge(
                &self.ctx,
                &self.plan.outer,
                legs,
                &self.text,
                grid,
                &self.options,
            )
            .await
        })
    }
}

/// A LogQL metric query's legs and merge ([`logql::shard::ShardPlan`]) on
/// a grid (nanoseconds).
struct LogqlShards {
    ctx: SessionContext,
    text: String,
    plan: logql::shard::ShardPlan,
    options: LogqlOptions,
    step: i64,
    instant: bool,
}

impl LogqlShards {
    fn times(&self, start: i64, end: i64) -> Vec<i64> {
        if self.instant {
            return vec![start];
        }
        let steps = (end - start) / self.step + 1;
        (0..steps).map(|i| start + i * self.step).collect()
    }
}

impl ShardedQuery for LogqlShards {
    type Error = LogqlError;

    fn leg(
        self: Arc<Self>,
        leg: usize,
        shard: QueryShard,
        start: i64,
        end: i64,
    ) -> BoxFuture<'static, Result<QueryOutput, LogqlError>> {
        Box::pin(async move {
            let times = self.times(start, end);
            let value = logql::evaluate_shard_leg(
                &self.ctx,
                &self.text,
                &self.plan.legs[leg],
                shard,
                &times,
                self.instant,
                &self.options,
            )
            .await?;
            Ok(QueryOutput {
                value,
                warnings: Vec::new(),
                infos: Vec::new(),
            })
        })
    }

    fn merge(
        self: Arc<Self>,
        start: i64,
        end: i64,
        legs: Vec<Vec<QueryOutput>>,
    ) -> BoxFuture<'static, Result<QueryOutput, LogqlError>> {
        Box::pin(async move {
            let times = self.times(start, end);
            let legs = legs
                .into_iter()
                .map(|shards| shards.into_iter().map(|o| o.value).collect())
                .collect();
            let value = logql::evaluate_shard_merge(
                &self.plan.outer,
                legs,
                &times,
                self.instant,
                &self.options,
            )?;
            Ok(QueryOutput {
                value,
                warnings: Vec::new(),
                infos: Vec::new(),
            })
        })
    }
}

impl QueryFrontend {
    /// Runs a sharded query: every time part not cached as `legs × shards`
    /// pieces, merged per part.
    async fn run_sharded<S: ShardedQuery>(
        &self,
        range: RangeQuery<'_>,
        query: S,
        legs: usize,
        shards: usize,
        queue_parts: bool,
    ) -> Result<QueryOutput, FrontendError<S::Error>> {
        self.metrics
            .add(SHARDED_QUERIES, &[("language", range.language)], 1.0);
        let pieces = shard_pieces(Arc::new(query), legs, shards);
        self.split_and_cache_pieces(range, pieces, queue_parts)
            .await
    }

    /// A PromQL range query (times in ms) through the frontend: split by
    /// time, cached, and sharded by series where the query and the tenant's
    /// `sharding` allow. `within_slot`: the caller holds a queue slot
    /// already (a SQL statement), so the parts and shards do not queue.
    #[allow(clippy::too_many_arguments)]
    pub async fn promql_range_query(
        &self,
        tenant: &str,
        ctx: SessionContext,
        text: &str,
        expr: &Expr,
        (start, end, step): (i64, i64, i64),
        options: &QueryOptions,
        sharding: ShardingLimits,
        within_slot: bool,
    ) -> Result<QueryOutput, FrontendError<PromError>> {
        let range = RangeQuery::promql(tenant, text, expr, (start, end, step), options);
        let parts = self.parts(&range).len();
        let Some((plan, shards)) = sharded(expr, sharding, parts) else {
            let run_part = promql_parts(ctx, text, step, options);
            return self.split_and_cache(range, run_part, !within_slot).await;
        };
        let legs = plan.legs.len();
        let query = PromqlShards {
            ctx,
            text: text.to_string(),
            plan,
            options: options.clone(),
            step,
            instant: false,
        };
        self.run_sharded(range, query, legs, shards, !within_slot)
            .await
    }

    /// How a PromQL range query would be sharded (for `EXPLAIN`), e.g.
    /// `sharded: 2 legs × 4 shards per time part`; `None` when it is not.
    pub fn describe_sharding(
        &self,
        tenant: &str,
        text: &str,
        (start, end, step): (i64, i64, i64),
        options: &QueryOptions,
        sharding: ShardingLimits,
    ) -> Option<String> {
        if sharding.total_shards < 2 || step <= 0 || end < start {
            return None;
        }
        let expr = crate::query::promql::parse(text).ok()?;
        let range = RangeQuery::promql(tenant, text, &expr, (start, end, step), options);
        let parts = self.parts(&range).len();
        let (plan, shards) = sharded(&expr, sharding, parts)?;
        Some(format!(
            "sharded: {} leg{} × {shards} shards per time part",
            plan.legs.len(),
            if plan.legs.len() == 1 { "" } else { "s" }
        ))
    }

    /// A PromQL instant query (time in ms) through the fair queue, sharded
    /// by series where the query and the tenant's `sharding` allow (each
    /// shard then queues on its own).
    pub async fn promql_instant_query(
        &self,
        tenant: &str,
        ctx: SessionContext,
        text: &str,
        time: i64,
        options: &QueryOptions,
        sharding: ShardingLimits,
    ) -> Result<QueryOutput, FrontendError<PromError>> {
        let sharded = match sharding.total_shards {
            0 | 1 => None,
            _ => sharded(
                &crate::query::promql::parse(text).map_err(FrontendError::Query)?,
                sharding,
                1,
            ),
        };
        let Some((plan, shards)) = sharded else {
            return self
                .run(tenant, "promql", instant_query(&ctx, text, time, options))
                .await;
        };
        let legs = plan.legs.len();
        let query = PromqlShards {
            ctx,
            text: text.to_string(),
            plan,
            options: options.clone(),
            step: 1,
            instant: true,
        };
        self.run_sharded(
            RangeQuery::instant(tenant, "promql", time, 1_000_000),
            query,
            legs,
            shards,
            true,
        )
        .await
    }

    /// A LogQL metric range query (times in ns, `step` > 0, `start <=
    /// end`) through the frontend: split by time, cached, and sharded by
    /// stream where the query and the tenant's `sharding` allow.
    #[allow(clippy::too_many_arguments)]
    pub async fn logql_range_query(
        &self,
        tenant: &str,
        ctx: SessionContext,
        text: &str,
        expr: &MetricExpr,
        (start, end, step): (i64, i64, i64),
        options: &LogqlOptions,
        sharding: ShardingLimits,
    ) -> Result<QueryOutput, FrontendError<LogqlError>> {
        let range = RangeQuery {
            tenant,
            language: "logql",
            cache_key: Some(text.to_string()),
            splittable: true,
            start,
            end,
            step,
            unit_ns: 1,
        };
        let parts = self.parts(&range).len();
        let unsharded = |range, ctx| {
            let run_part = logql_parts(ctx, text, expr, step, options);
            self.split_and_cache(range, run_part, true)
        };
        let Some((plan, shards)) = logql_sharded(expr, sharding, parts) else {
            return unsharded(range, ctx).await;
        };
        let legs = plan.legs.len();
        let query = LogqlShards {
            ctx: ctx.clone(),
            text: text.to_string(),
            plan,
            options: options.clone(),
            step,
            instant: false,
        };
        match self
            .run_sharded(range.clone(), query, legs, shards, true)
            .await
        {
            Err(FrontendError::Query(LogqlError::ShardingUnsafe(_))) => {
                self.metrics
                    .add(SHARDING_FALLBACKS, &[("language", "logql")], 1.0);
                unsharded(range, ctx).await
            }
            answer => answer,
        }
    }

    /// A LogQL metric instant query (time in ns) through the fair queue,
    /// sharded by stream where the query and the tenant's `sharding` allow.
    #[allow(clippy::too_many_arguments)]
    pub async fn logql_instant_query(
        &self,
        tenant: &str,
        ctx: SessionContext,
        text: &str,
        expr: &MetricExpr,
        time: i64,
        options: &LogqlOptions,
        sharding: ShardingLimits,
    ) -> Result<QueryValue, FrontendError<LogqlError>> {
        let unsharded = |ctx: SessionContext| async move {
            let whole = logql::ast::Expr::Metric(expr.clone());
            let value = self
                .run(
                    tenant,
                    "logql",
                    logql::instant_query(&ctx, text, &whole, time, options),
                )
                .await?;
            match value {
                logql::LogqlValue::Metric(value) => Ok(value),
                logql::LogqlValue::Streams(_) => Err(FrontendError::Internal(
                    "a metric query answered log streams".into(),
                )),
            }
        };
        let Some((plan, shards)) = logql_sharded(expr, sharding, 1) else {
            return unsharded(ctx).await;
        };
        let legs = plan.legs.len();
        let query = LogqlShards {
            ctx: ctx.clone(),
            text: text.to_string(),
            plan,
            options: options.clone(),
            step: 1,
            instant: true,
        };
        let range = RangeQuery::instant(tenant, "logql", time, 1);
        match self.run_sharded(range, query, legs, shards, true).await {
            Ok(output) => {
                logql::check_series(&output.value, options).map_err(FrontendError::Query)?;
                Ok(output.value)
            }
            Err(FrontendError::Query(LogqlError::ShardingUnsafe(_))) => {
                self.metrics
                    .add(SHARDING_FALLBACKS, &[("language", "logql")], 1.0);
                unsharded(ctx).await
            }
            Err(e) => Err(e),
        }
    }
}

/// The plan and shard count a LogQL metric query runs with, if it is sharded.
fn logql_sharded(
    expr: &MetricExpr,
    limits: ShardingLimits,
    parts: usize,
) -> Option<(logql::shard::ShardPlan, usize)> {
    if limits.total_shards < 2 {
        return None;
    }
    let plan = logql::shard::plan(expr)?;
    let shards = shard_count(limits, parts, plan.legs.len())?;
    Some((plan, shards))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_sharded_queries_lowers_the_shard_count() {
        let limits = ShardingLimits {
            total_shards: 16,
            max_sharded_queries: 128,
        };
        assert_eq!(limits.shards_for(1, 1), 16);
        assert_eq!(limits.shards_for(7, 1), 16);
        assert_eq!(limits.shards_for(7, 2), 9);
        assert_eq!(limits.shards_for(100, 1), 1);
        let unlimited = ShardingLimits {
            max_sharded_queries: 0,
            ..limits
        };
        assert_eq!(unlimited.shards_for(100, 3), 16);
        let expr = promql_parser::parser::parse("sum(rate(m[5m]))").unwrap();
        assert!(
            sharded(&expr, limits, 100).is_none(),
            "1 shard is no sharding"
        );
        assert_eq!(sharded(&expr, limits, 2).map(|(_, n)| n), Some(16));
        let off = ShardingLimits::default();
        assert!(sharded(&expr, off, 1).is_none());
        let plain = promql_parser::parser::parse("rate(m[5m])").unwrap();
        assert!(sharded(&plain, limits, 1).is_none());
    }
}
