//! Query sharding of PromQL queries in the frontend (Mimir's
//! `query_sharding_total_shards`): a query with shardable aggregations
//! ([`crate::query::promql::shard`]) runs, in every time part, as one
//! query per leg and shard — each restricted to its shard's series by a
//! `__query_shard__` matcher, each through the tenant's fair queue like a
//! time part — and the shards' answers are merged by evaluating the outer
//! expression over them. Range queries keep their time splitting and
//! results cache: a part's merged answer is cached, under the same key as
//! unsharded (the answer is the same). Queries with nothing shardable, and
//! tenants with sharding off, take the unsharded path.

use std::sync::Arc;

use datafusion::prelude::SessionContext;
use futures::future::BoxFuture;
use promql_parser::parser::Expr;

use super::{FrontendError, Pieces, QueryFrontend, RangeQuery, SHARDED_QUERIES, promql_parts};
use crate::ingest::limits::Limits;
use crate::query::promql::shard::{QueryShard, ShardPlan, plan};
use crate::query::promql::{
    Grid, PromError, QueryOptions, QueryOutput, evaluate_shard_leg, evaluate_shard_merge,
    instant_query,
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

/// The plan and shard count a query runs with, if it is sharded.
fn sharded(expr: &Expr, limits: ShardingLimits, parts: usize) -> Option<(ShardPlan, usize)> {
    if limits.total_shards < 2 {
        return None;
    }
    let plan = plan(expr)?;
    let shards = limits.shards_for(parts, plan.legs.len());
    (shards >= 2).then_some((plan, shards))
}

/// The pieces of a sharded query's time part: piece `k × shards + i` is
/// leg `k` on shard `i`; the merge evaluates the outer expression.
#[allow(clippy::type_complexity)]
fn shard_pieces(
    ctx: SessionContext,
    text: &str,
    plan: ShardPlan,
    shards: usize,
    options: &QueryOptions,
    grid: impl Fn(i64, i64) -> Grid + Copy + Send + Sync + 'static,
) -> Pieces<
    impl Fn(usize, i64, i64) -> BoxFuture<'static, Result<QueryOutput, PromError>>,
    impl Fn(i64, i64, Vec<QueryOutput>) -> BoxFuture<'static, Result<QueryOutput, PromError>>,
> {
    let leg_queries: Arc<Vec<String>> = Arc::new(
        (0..plan.legs.len())
            .flat_map(|k| {
                let plan = &plan;
                (0..shards).map(move |i| {
                    plan.leg_query(
                        k,
                        QueryShard {
                            index: i as u64,
                            total: shards as u64,
                        },
                    )
                })
            })
            .collect(),
    );
    let count = leg_queries.len();
    let text: Arc<str> = Arc::from(text);
    let options = Arc::new(options.clone());
    let outer = Arc::new(plan.outer);
    let run = {
        let (ctx, text, options) = (ctx.clone(), text.clone(), options.clone());
        move |piece: usize, start: i64, end: i64| {
            let (ctx, text, options) = (ctx.clone(), text.clone(), options.clone());
            let leg_queries = leg_queries.clone();
            Box::pin(async move {
                evaluate_shard_leg(&ctx, &leg_queries[piece], &text, grid(start, end), &options)
                    .await
            }) as BoxFuture<'static, _>
        }
    };
    let combine = move |start: i64, end: i64, outputs: Vec<QueryOutput>| {
        let (ctx, text, options, outer) =
            (ctx.clone(), text.clone(), options.clone(), outer.clone());
        Box::pin(async move {
            let mut outputs = outputs.into_iter();
            let legs: Vec<Vec<QueryOutput>> = (0..count / shards)
                .map(|_| outputs.by_ref().take(shards).collect())
                .collect();
            evaluate_shard_merge(&ctx, &outer, legs, &text, grid(start, end), &options).await
        }) as BoxFuture<'static, _>
    };
    Pieces {
        count,
        run,
        combine: Some(combine),
    }
}

impl QueryFrontend {
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
        self.metrics
            .add(SHARDED_QUERIES, &[("language", "promql")], 1.0);
        let grid = move |start, end| Grid {
            start,
            end,
            step,
            instant: false,
        };
        let pieces = shard_pieces(ctx, text, plan, shards, options, grid);
        self.split_and_cache_pieces(range, pieces, !within_slot)
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
        self.metrics
            .add(SHARDED_QUERIES, &[("language", "promql")], 1.0);
        let query = RangeQuery {
            tenant,
            language: "promql",
            cache_key: None,
            splittable: false,
            start: time,
            end: time,
            step: 1,
            unit_ns: 1_000_000,
        };
        let grid = |start, _end| Grid {
            start,
            end: start,
            step: 1,
            instant: true,
        };
        let pieces = shard_pieces(ctx, text, plan, shards, options, grid);
        self.split_and_cache_pieces(query, pieces, true).await
    }
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
