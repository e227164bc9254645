//! Restoring alerts' `for` state after a restart, as Prometheus'
//! `Group.RestoreForState` does.
//!
//! What flows through: once after the ruler starts (after the second
//! evaluation of each group), every alerting rule with `for` of at least
//! `for_grace_period` reads its `ALERTS_FOR_STATE` series of the last
//! `outage_tolerance` → the last sample of each active alert's series (its
//! time is when the ruler went down, its value the alert's `activeAt` in
//! Unix seconds) → the alert's `activeAt` moved by [`restored_active_at`].
//! Until a rule is restored it writes no `ALERTS` / `ALERTS_FOR_STATE`, so
//! the series still hold the state from before the restart.

use std::collections::HashMap;

use parking_lot::Mutex;
use promql_parser::label::{MatchOp, Matcher};

use super::eval::{EvalContext, GroupState};
use super::rules::{RuleGroup, RuleKind};
use crate::model::STALE_NAN_BITS;
use crate::query::promql::Labels;

/// The `activeAt` (ms) of an alert restored from its last `ALERTS_FOR_STATE`
/// sample: `stored_active_at_s` (the sample's value), `down_at_ms` (its
/// time), restored at `now_ms`. Prometheus' arithmetic, in whole seconds
/// for the stored times as Prometheus has them:
///
/// * pending time before the outage = `down_at - active_at`; remaining =
///   `for` − that;
/// * remaining ≤ 0 (the alert was firing): `active_at` as stored;
/// * remaining < `for_grace_period`: `now + grace − for`, so the alert
///   fires `for_grace_period` after the restart, not at once;
/// * otherwise `active_at + (now − down_at)`: the outage does not count as
///   pending time.
pub fn restored_active_at(
    stored_active_at_s: f64,
    down_at_ms: i64,
    now_ms: i64,
    hold_ms: i64,
    grace_ms: i64,
) -> i64 {
    let down_at = down_at_ms.div_euclid(1000) * 1000;
    let active_at = (stored_active_at_s as i64).saturating_mul(1000);
    let remaining = hold_ms - (down_at - active_at);
    if remaining <= 0 {
        active_at
    } else if remaining < grace_ms {
        now_ms + grace_ms - hold_ms
    } else {
        active_at + (now_ms - down_at)
    }
}

/// Restores the `for` state of `group`'s alerting rules at `now_ms` and
/// marks every rule restored (so it writes its `ALERTS` series again).
pub async fn restore_for_state(
    ctx: &EvalContext,
    group: &RuleGroup,
    state: &Mutex<GroupState>,
    now_ms: i64,
) {
    let config = &ctx.engine.config().ruler;
    let tolerance_ms = config.outage_tolerance.as_millis() as i64;
    let grace_ms = config.for_grace_period.as_millis() as i64;
    for (i, rule) in group.rules.iter().enumerate() {
        let RuleKind::Alert { hold, .. } = &rule.kind else {
            state.lock().rules[i].restored = true;
            continue;
        };
        let hold_ms = hold.as_millis() as i64;
        // A `for` shorter than the grace period is not restored: waiting
        // it again is shorter than the grace period would be.
        if hold_ms < grace_ms || state.lock().rules[i].alerts.is_empty() {
            state.lock().rules[i].restored = true;
            continue;
        }
        let mut matchers = vec![
            Matcher::new(MatchOp::Equal, "__name__", "ALERTS_FOR_STATE"),
            Matcher::new(MatchOp::Equal, "alertname", &rule.name),
        ];
        // Templated label values are only known per alert.
        for (k, v) in group.labels.iter().chain(rule.labels.iter()) {
            if !v.contains("{{") && !v.is_empty() {
                matchers.push(Matcher::new(MatchOp::Equal, k, v));
            }
        }
        let series = match ctx.engine.tables_session(&ctx.tenant) {
            Ok(session) => crate::query::promql::fetch::fetch_series(
                &session,
                &[matchers],
                now_ms - tolerance_ms,
                now_ms,
                ctx.engine.config().query.max_samples,
                0,
            )
            .await
            .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let series = match series {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(
                    tenant = %ctx.tenant,
                    group = %group.name,
                    alert = %rule.name,
                    "reading ALERTS_FOR_STATE to restore the 'for' state failed: {e}"
                );
                state.lock().rules[i].restored = true;
                continue;
            }
        };
        let last: HashMap<Labels, (i64, f64)> = series
            .into_iter()
            .filter_map(|s| {
                let labels: Labels = s
                    .labels
                    .into_iter()
                    .filter(|(k, _)| k != "__name__")
                    .collect();
                let t = *s.timestamps.last()?;
                let v = *s.values.last()?;
                Some((labels, (t, v)))
            })
            .collect();
        let mut st = state.lock();
        let rs = &mut st.rules[i];
        for a in rs.alerts.values_mut() {
            let Some(&(down_at_ms, value)) = last.get(&a.labels) else {
                continue;
            };
            if value.to_bits() == STALE_NAN_BITS {
                // The alert had ended before the outage.
                continue;
            }
            let restored = restored_active_at(value, down_at_ms, now_ms, hold_ms, grace_ms);
            tracing::info!(
                tenant = %ctx.tenant,
                group = %group.name,
                alert = %rule.name,
                labels = ?a.labels,
                down_at_ms,
                stored_active_at_s = value,
                restored_active_at_ms = restored,
                "restored the alert's 'for' state"
            );
            a.active_at_ms = restored;
        }
        rs.restored = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1000;
    const MIN: i64 = 60 * S;

    #[test]
    fn restored_active_at_follows_prometheus() {
        // Pending 2m of a 10m `for` when the ruler went down at 1000s; back
        // at 1300s: the 5m outage does not count, 8m remain.
        assert_eq!(
            restored_active_at(880.0, 1000 * S + 400, 1300 * S, 10 * MIN, 2 * MIN),
            (880 + 300) * S
        );
        // 1m of 10m remained, less than the 2m grace period: fires 2m after
        // the restart.
        assert_eq!(
            restored_active_at(460.0, 1000 * S, 1300 * S, 10 * MIN, 2 * MIN),
            1300 * S + 2 * MIN - 10 * MIN
        );
        // Firing already (more than `for` pending before the outage): kept.
        assert_eq!(
            restored_active_at(100.9, 1000 * S, 1300 * S, 10 * MIN, 2 * MIN),
            100 * S
        );
    }
}
