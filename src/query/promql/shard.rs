//! Query sharding of PromQL, as Mimir does it: a parsed query → the
//! aggregations that can be computed per series shard (the *legs*) and the
//! *outer* expression that merges their partial answers.
//!
//! A series belongs to shard `i` of `N` by its `series_id` (the xxh3 hash
//! of its metric name and labels): the id space is cut into `N` equal,
//! contiguous ranges, so a shard is one range predicate on `series_id`,
//! which the scan of `samples` applies before any label is decoded (and
//! which the page index can prune, blocks being sorted by metric, then
//! series id). A selector is restricted to one shard by the pseudo matcher
//! `__query_shard__="<i>_of_<N>"` (1-based, Mimir's spelling).
//!
//! [`plan`] finds, from the top of the query down, each aggregation whose
//! argument is *series-local* — every series it yields comes from one
//! selected series (selectors, range functions, per-series functions,
//! arithmetic with selector-free operands, subqueries thereof) — and whose
//! operator merges partial answers exactly:
//!
//! | query | each shard runs | outer merge |
//! | --- | --- | --- |
//! | `sum`, `min`, `max`, `group`, `topk(k, …)`, `bottomk(k, …)` | the same | the same aggregation over the shards' series |
//! | `count` | `count` | `sum` |
//! | `avg` | `sum` and `count` (two legs) | `sum(sums) / sum(counts)` |
//!
//! all keeping the `by`/`without` clause. Anything else (`quantile`,
//! `stddev`, `count_values`, `limitk`, binary operators between two
//! vectors, `absent`, `scalar`, `vector`, `histogram_quantile` over raw
//! buckets, …) is not sharded itself, but aggregations under it may be:
//! `histogram_quantile(0.9, sum by (le) (rate(x[5m])))` shards the `sum`.
//! Nothing under a subquery or inside a range function is sharded in the
//! outer expression (it is evaluated on another grid).

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::token::{
    T_AVG, T_BOTTOMK, T_COUNT, T_DIV, T_GROUP, T_MAX, T_MIN, T_SUM, T_TOPK, TokenType,
};
use promql_parser::parser::{
    AggregateExpr, BinaryExpr, Expr, LabelModifier, ParenExpr, VectorSelector,
};

use super::value::METRIC_NAME;

/// The pseudo label a selector is restricted to one shard with.
pub const QUERY_SHARD_LABEL: &str = "__query_shard__";

/// Name of the placeholder selector standing for leg `k` in [`ShardPlan::outer`].
const LEG_PREFIX: &str = "__o11ydb_sharded_leg_";

/// One shard of a query: `index` (0-based) of `total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QueryShard {
    pub index: u64,
    pub total: u64,
}

impl QueryShard {
    /// Parses Mimir's `"<i>_of_<N>"` (1-based).
    pub fn parse(value: &str) -> Result<QueryShard, String> {
        let bad = || {
            format!(
                "invalid {QUERY_SHARD_LABEL} matcher value {value:?}: expected \"<shard>_of_<total>\" with 1 <= shard <= total, e.g. \"1_of_4\""
            )
        };
        let (i, n) = value.split_once("_of_").ok_or_else(bad)?;
        let (i, n): (u64, u64) = (i.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
        if i == 0 || n == 0 || i > n {
            return Err(bad());
        }
        Ok(QueryShard {
            index: i - 1,
            total: n,
        })
    }

    /// The matcher value, `"<index + 1>_of_<total>"`.
    pub fn label_value(&self) -> String {
        format!("{}_of_{}", self.index + 1, self.total)
    }

    /// The first series id of shard `index` (as i128: `total` gives the end
    /// of the id space, one past `i64::MAX`).
    fn boundary(index: u64, total: u64) -> i128 {
        let span: u128 = 1 << 64;
        let offset = (index as u128 * span).div_ceil(total as u128);
        i64::MIN as i128 + offset as i128
    }

    /// The series ids of this shard: `lo..hi` (`hi` = `None`: to the end).
    pub fn id_range(&self) -> (i64, Option<i64>) {
        let lo = Self::boundary(self.index, self.total) as i64;
        let hi = (self.index + 1 < self.total)
            .then(|| Self::boundary(self.index + 1, self.total) as i64);
        (lo, hi)
    }

    /// The shard of `total` a series id falls in.
    pub fn of(series_id: i64, total: u64) -> QueryShard {
        let offset = (series_id as i128 - i64::MIN as i128) as u128;
        QueryShard {
            index: ((offset * total as u128) >> 64) as u64,
            total,
        }
    }
}

/// The shard the matcher alternatives of one selector are restricted to:
/// every alternative must name the same one, or none does.
pub fn query_shard(sets: &[Vec<Matcher>]) -> Result<Option<QueryShard>, String> {
    let mut found: Vec<Option<QueryShard>> = Vec::with_capacity(sets.len());
    for set in sets {
        let mut shard = None;
        for m in set.iter().filter(|m| m.name == QUERY_SHARD_LABEL) {
            if m.op != MatchOp::Equal {
                return Err(format!(
                    "{QUERY_SHARD_LABEL} supports only the = matcher, got {m}"
                ));
            }
            if shard.is_some() {
                return Err(format!("{QUERY_SHARD_LABEL} given twice in one selector"));
            }
            shard = Some(QueryShard::parse(&m.value)?);
        }
        found.push(shard);
    }
    match found.split_first() {
        None => Ok(None),
        Some((first, rest)) if rest.iter().all(|s| s == first) => Ok(*first),
        Some(_) => Err(format!(
            "{QUERY_SHARD_LABEL} must be the same in every alternative (or) of a selector"
        )),
    }
}

/// A query cut into shardable legs and the expression merging them.
#[derive(Debug, Clone)]
pub struct ShardPlan {
    /// The query with each leg replaced by a placeholder selector
    /// ([`ShardPlan::leg_of`] tells which); it merges the shards' answers.
    pub outer: Expr,
    /// The aggregations each shard evaluates, in placeholder order.
    pub legs: Vec<Expr>,
}

impl ShardPlan {
    /// Which leg a selector of [`ShardPlan::outer`] stands for.
    pub fn leg_of(vs: &VectorSelector) -> Option<usize> {
        vs.name.as_deref()?.strip_prefix(LEG_PREFIX)?.parse().ok()
    }

    /// The text of leg `k` restricted to `shard` (every selector gets the
    /// `__query_shard__` matcher).
    pub fn leg_query(&self, k: usize, shard: QueryShard) -> String {
        let mut leg = self.legs[k].clone();
        restrict(&mut leg, &shard.label_value());
        leg.to_string()
    }
}

/// The shard plan of a query, `None` when nothing in it can be sharded
/// (or it names shards itself).
pub fn plan(expr: &Expr) -> Option<ShardPlan> {
    let mut nodes = Vec::new();
    super::eval::selectors(expr, &mut nodes);
    if nodes.iter().any(|vs| {
        vs.matchers
            .matchers
            .iter()
            .chain(vs.matchers.or_matchers.iter().flatten())
            .any(|m| m.name == QUERY_SHARD_LABEL)
    }) {
        return None;
    }
    let mut legs = Vec::new();
    let outer = rewrite(expr, &mut legs);
    (!legs.is_empty()).then_some(ShardPlan { outer, legs })
}

fn placeholder(legs: &mut Vec<Expr>, leg: Expr) -> Expr {
    let name = format!("{LEG_PREFIX}{}", legs.len());
    legs.push(leg);
    Expr::VectorSelector(VectorSelector::from(name))
}

/// `expr` with its shardable aggregations replaced by their merges.
fn rewrite(expr: &Expr, legs: &mut Vec<Expr>) -> Expr {
    match expr {
        Expr::Aggregate(agg) => {
            if let Some(merged) = shard_aggregation(agg, legs) {
                return merged;
            }
            let mut agg = agg.clone();
            agg.expr = Box::new(rewrite(&agg.expr, legs));
            Expr::Aggregate(agg)
        }
        Expr::Binary(b) => {
            let mut b = b.clone();
            b.lhs = Box::new(rewrite(&b.lhs, legs));
            b.rhs = Box::new(rewrite(&b.rhs, legs));
            Expr::Binary(b)
        }
        Expr::Paren(p) => Expr::Paren(ParenExpr {
            expr: Box::new(rewrite(&p.expr, legs)),
        }),
        Expr::Unary(u) => {
            let mut u = u.clone();
            u.expr = Box::new(rewrite(&u.expr, legs));
            Expr::Unary(u)
        }
        // absent() names its answer after the selector under it; the
        // placeholder would change that.
        Expr::Call(c) if !c.func.name.starts_with("absent") => {
            let mut c = c.clone();
            for arg in &mut c.args.args {
                let rewritten = rewrite(arg, legs);
                **arg = rewritten;
            }
            Expr::Call(c)
        }
        // Subqueries, range selectors and literals: evaluated on another
        // grid or holding nothing to shard.
        _ => expr.clone(),
    }
}

/// The merge of a shardable aggregation (its legs pushed), or `None`.
fn shard_aggregation(agg: &AggregateExpr, legs: &mut Vec<Expr>) -> Option<Expr> {
    let op = agg.op.id();
    if !matches!(
        op,
        T_SUM | T_MIN | T_MAX | T_COUNT | T_GROUP | T_TOPK | T_BOTTOMK | T_AVG
    ) {
        return None;
    }
    // The shards' answers have had their names dropped where the engine
    // drops them, so grouping by the name could merge differently.
    if let Some(LabelModifier::Include(names)) = &agg.modifier
        && names.labels.iter().any(|l| l == METRIC_NAME)
    {
        return None;
    }
    if agg.param.as_deref().is_some_and(has_selectors)
        || !has_selectors(&agg.expr)
        || !series_local(&agg.expr)
    {
        return None;
    }
    let over = |op: u16, input: Expr| {
        Expr::Aggregate(AggregateExpr {
            op: TokenType::new(op),
            expr: Box::new(input),
            param: agg.param.clone(),
            modifier: agg.modifier.clone(),
        })
    };
    let leg = |op: u16| over(op, (*agg.expr).clone());
    Some(match op {
        T_COUNT => {
            let input = placeholder(legs, leg(T_COUNT));
            over(T_SUM, input)
        }
        T_AVG => {
            let sums = placeholder(legs, leg(T_SUM));
            let counts = placeholder(legs, leg(T_COUNT));
            Expr::Binary(BinaryExpr {
                op: TokenType::new(T_DIV),
                lhs: Box::new(over(T_SUM, sums)),
                rhs: Box::new(over(T_SUM, counts)),
                modifier: None,
            })
        }
        _ => {
            let input = placeholder(legs, leg(op));
            over(op, input)
        }
    })
}

/// Functions whose every output series comes from one input series (or
/// that take no series at all).
const SERIES_LOCAL_FUNCTIONS: &[&str] = &[
    "abs",
    "acos",
    "acosh",
    "asin",
    "asinh",
    "atan",
    "atanh",
    "avg_over_time",
    "ceil",
    "changes",
    "clamp",
    "clamp_max",
    "clamp_min",
    "cos",
    "cosh",
    "count_over_time",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "days_in_month",
    "deg",
    "delta",
    "deriv",
    "double_exponential_smoothing",
    "exp",
    "floor",
    "histogram_avg",
    "histogram_count",
    "histogram_fraction",
    "histogram_stddev",
    "histogram_stdvar",
    "histogram_sum",
    "holt_winters",
    "hour",
    "idelta",
    "increase",
    "irate",
    "label_join",
    "label_replace",
    "last_over_time",
    "ln",
    "log10",
    "log2",
    "mad_over_time",
    "max_over_time",
    "min_over_time",
    "minute",
    "month",
    "pi",
    "predict_linear",
    "present_over_time",
    "quantile_over_time",
    "rad",
    "rate",
    "resets",
    "round",
    "sgn",
    "sin",
    "sinh",
    "sort",
    "sort_by_label",
    "sort_by_label_desc",
    "sort_desc",
    "sqrt",
    "stddev_over_time",
    "stdvar_over_time",
    "sum_over_time",
    "tan",
    "tanh",
    "time",
    "timestamp",
    "year",
];

/// Whether every series `expr` yields comes from exactly one selected
/// series, so evaluating it over a shard's series yields exactly that
/// shard's part of its answer.
pub fn series_local(expr: &Expr) -> bool {
    match expr {
        Expr::VectorSelector(_)
        | Expr::MatrixSelector(_)
        | Expr::NumberLiteral(_)
        | Expr::StringLiteral(_) => true,
        Expr::Paren(p) => series_local(&p.expr),
        Expr::Unary(u) => series_local(&u.expr),
        Expr::Subquery(s) => series_local(&s.expr),
        Expr::Binary(b) => {
            series_local(&b.lhs)
                && series_local(&b.rhs)
                && !(has_selectors(&b.lhs) && has_selectors(&b.rhs))
        }
        Expr::Call(c) => {
            SERIES_LOCAL_FUNCTIONS.contains(&c.func.name)
                && c.args.args.iter().all(|a| series_local(a))
                && c.args.args.iter().filter(|a| has_selectors(a)).count() <= 1
        }
        Expr::Aggregate(_) | Expr::Extension(_) => false,
    }
}

fn has_selectors(expr: &Expr) -> bool {
    let mut found = Vec::new();
    super::eval::selectors(expr, &mut found);
    !found.is_empty()
}

/// Adds `__query_shard__="<value>"` to every selector (every alternative) of `expr`.
fn restrict(expr: &mut Expr, value: &str) {
    let add = |vs: &mut VectorSelector| {
        let matcher = Matcher::new(MatchOp::Equal, QUERY_SHARD_LABEL, value);
        if vs.matchers.or_matchers.is_empty() {
            vs.matchers.matchers.push(matcher);
        } else {
            for set in &mut vs.matchers.or_matchers {
                set.push(matcher.clone());
            }
        }
    };
    match expr {
        Expr::VectorSelector(vs) => add(vs),
        Expr::MatrixSelector(ms) => add(&mut ms.vs),
        Expr::Subquery(s) => restrict(&mut s.expr, value),
        Expr::Paren(p) => restrict(&mut p.expr, value),
        Expr::Unary(u) => restrict(&mut u.expr, value),
        Expr::Binary(b) => {
            restrict(&mut b.lhs, value);
            restrict(&mut b.rhs, value);
        }
        Expr::Aggregate(a) => {
            restrict(&mut a.expr, value);
            if let Some(p) = &mut a.param {
                restrict(p, value);
            }
        }
        Expr::Call(c) => c.args.args.iter_mut().for_each(|a| restrict(a, value)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str) -> Expr {
        promql_parser::parser::parse(q).unwrap_or_else(|e| panic!("{q}: {e}"))
    }

    /// The outer expression as text, placeholders shown as `LEG<k>`.
    fn outer_text(plan: &ShardPlan) -> String {
        let mut text = plan.outer.to_string();
        for k in (0..plan.legs.len()).rev() {
            text = text.replace(&format!("{LEG_PREFIX}{k}"), &format!("LEG{k}"));
        }
        text
    }

    #[test]
    fn shard_values_parse_like_mimir_and_reject_nonsense() {
        assert_eq!(
            QueryShard::parse("1_of_4"),
            Ok(QueryShard { index: 0, total: 4 })
        );
        assert_eq!(QueryShard::parse("4_of_4").unwrap().label_value(), "4_of_4");
        for bad in [
            "0_of_4", "5_of_4", "1_of_0", "1of4", "a_of_b", "", "-1_of_2",
        ] {
            let err = QueryShard::parse(bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn shards_cut_the_id_space_into_contiguous_ranges() {
        for total in [1u64, 2, 3, 4, 7, 16, 1000] {
            let mut previous_end: Option<i64> = None;
            for index in 0..total {
                let shard = QueryShard { index, total };
                let (lo, hi) = shard.id_range();
                match previous_end {
                    None => assert_eq!(lo, i64::MIN),
                    Some(end) => assert_eq!(lo, end, "shards {total} touch"),
                }
                assert_eq!(QueryShard::of(lo, total), shard, "{lo} in {shard:?}");
                if lo > i64::MIN {
                    assert_eq!(QueryShard::of(lo - 1, total).index, index - 1);
                }
                match hi {
                    Some(hi) => {
                        assert_eq!(QueryShard::of(hi - 1, total), shard);
                        previous_end = Some(hi);
                    }
                    None => {
                        assert_eq!(index, total - 1);
                        assert_eq!(QueryShard::of(i64::MAX, total), shard);
                    }
                }
            }
        }
        // Hashes spread evenly.
        let mut counts = [0usize; 4];
        for i in 0..4000 {
            let id = crate::model::labels::series_id("m", &[("i", i.to_string())]);
            counts[QueryShard::of(id, 4).index as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c > 850), "{counts:?}");
    }

    #[test]
    fn shardable_aggregations_are_rewritten_like_mimir() {
        let cases = [
            ("sum(rate(m[5m]))", "sum(LEG0)", vec!["sum(rate(m[5m]))"]),
            (
                "count by (job) (m)",
                "sum by (job) (LEG0)",
                vec!["count by (job) (m)"],
            ),
            (
                "avg without (instance) (m * 2)",
                "sum without (instance) (LEG0) / sum without (instance) (LEG1)",
                vec![
                    "sum without (instance) (m * 2)",
                    "count without (instance) (m * 2)",
                ],
            ),
            (
                "topk(3, max_over_time(m[10m]))",
                "topk(3, LEG0)",
                vec!["topk(3, max_over_time(m[10m]))"],
            ),
            (
                "histogram_quantile(0.9, sum by (le) (rate(h_bucket[5m])))",
                "histogram_quantile(0.9, sum by (le) (LEG0))",
                vec!["sum by (le) (rate(h_bucket[5m]))"],
            ),
            (
                "sum(rate(a[1m])) / sum(rate(b[1m]))",
                "sum(LEG0) / sum(LEG1)",
                vec!["sum(rate(a[1m]))", "sum(rate(b[1m]))"],
            ),
            // The outer max is not shardable (its argument aggregates), the inner sum is.
            (
                "max(sum by (job) (m))",
                "max(sum by (job) (LEG0))",
                vec!["sum by (job) (m)"],
            ),
            (
                "quantile(0.5, sum by (job) (m))",
                "quantile(0.5, sum by (job) (LEG0))",
                vec!["sum by (job) (m)"],
            ),
            (
                "sum(max_over_time(rate(m[1m])[10m:1m]))",
                "sum(LEG0)",
                vec!["sum(max_over_time(rate(m[1m])[10m:1m]))"],
            ),
            (
                "sum(m offset 5m) + 1",
                "sum(LEG0) + 1",
                vec!["sum(m offset 5m)"],
            ),
        ];
        for (query, outer, legs) in cases {
            let plan = plan(&parse(query)).unwrap_or_else(|| panic!("{query} not sharded"));
            assert_eq!(outer_text(&plan), outer, "{query}");
            let leg_texts: Vec<String> = plan.legs.iter().map(|l| l.to_string()).collect();
            assert_eq!(leg_texts, legs, "{query}");
        }
    }

    #[test]
    fn unshardable_queries_stay_whole() {
        for query in [
            "m",
            "rate(m[5m])",
            "quantile(0.9, m)",
            "stddev(m)",
            "count_values(\"v\", m)",
            "sum(a / b)",
            "sum(a * on (job) group_left b)",
            "sum(m or vector(0))",
            "sum(vector(1))",
            "sum(scalar(a) * b)",
            "topk(scalar(a), b)",
            "sum by (__name__) (m)",
            "absent(sum(m))",
            "max_over_time(sum(m)[1h:5m])",
            "limitk(2, m)",
            "sort(m)",
            "histogram_quantile(0.9, rate(h_bucket[5m]))",
            "count(m{__query_shard__=\"1_of_2\"})",
        ] {
            assert!(plan(&parse(query)).is_none(), "{query} was sharded");
        }
    }

    #[test]
    fn legs_carry_the_shard_matcher_on_every_selector_and_parse_back() {
        let query = r#"avg by (job) (max_over_time(rate(m{a=~"x|y\\.z", b="q\"r"}[5m] offset 1m)[10m:10s]) * 2)"#;
        let plan = plan(&parse(query)).unwrap();
        assert_eq!(plan.legs.len(), 2);
        let leg = plan.leg_query(1, QueryShard { index: 2, total: 4 });
        assert_eq!(
            leg.matches(r#"__query_shard__="3_of_4""#).count(),
            1,
            "{leg}"
        );
        assert!(leg.starts_with("count by (job) ("), "{leg}");
        let reparsed = parse(&leg);
        let mut restricted_original = plan.legs[1].clone();
        restrict(&mut restricted_original, "3_of_4");
        // The text parses back to the same query (matchers print sorted).
        assert_eq!(reparsed.to_string(), leg);
        assert_eq!(restricted_original.to_string(), leg);
        let or_query = r#"sum({a="1" or b="2"})"#;
        let leg = super::plan(&parse(or_query))
            .unwrap()
            .leg_query(0, QueryShard { index: 0, total: 2 });
        let Expr::Aggregate(agg) = parse(&leg) else {
            panic!("{leg}")
        };
        let Expr::VectorSelector(vs) = *agg.expr else {
            panic!("{leg}")
        };
        let sets = super::super::fetch::matcher_sets(None, &vs.matchers);
        assert_eq!(
            query_shard(&sets),
            Ok(Some(QueryShard { index: 0, total: 2 }))
        );
    }

    #[test]
    fn shard_matchers_must_agree_and_be_equalities() {
        let sets = |q: &str| {
            let Expr::VectorSelector(vs) = parse(q) else {
                panic!()
            };
            super::super::fetch::matcher_sets(vs.name.as_deref(), &vs.matchers)
        };
        assert_eq!(query_shard(&sets("m")), Ok(None));
        assert!(
            query_shard(&sets(r#"{a="1" or b="2", __query_shard__="1_of_2"}"#))
                .unwrap_err()
                .contains("every alternative")
        );
        assert!(
            query_shard(&sets(r#"m{__query_shard__=~"1_of_2"}"#))
                .unwrap_err()
                .contains("only the = matcher")
        );
        assert!(
            query_shard(&sets(r#"m{__query_shard__="3_of_2"}"#))
                .unwrap_err()
                .contains("\"3_of_2\"")
        );
    }
}
