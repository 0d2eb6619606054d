//! Usage data: how active each partner org and user is and what they
//! access — request counts per UTC day, org, user and route.
//!
//! - **What counts**: a request the gateway forwards to the upstream for an authenticated
//!   user: policy `allow`, or `shadow_deny` (shadow mode lets it through), after the rate
//!   limits passed — whatever the upstream then answers. Requests refused by the gateway
//!   (unauthenticated, denied, rate-limited), open routes (`auth = "none"`) and the
//!   gateway's own pages (`/.partnergate/…`) are not usage.
//! - **On the request path**: [`UsageCounter::record`] bumps an in-memory count (no I/O).
//! - **Flush**: every `lifecycle.usage_flush` (default 60 s) and at graceful shutdown,
//!   [`flush`] takes the counts and adds them to `usage_daily` in one transaction; several
//!   instances add into the same rows. A failed write puts the counts back for the next
//!   flush. Rows older than [`KEEP_DAYS`] days are pruned by the upkeep.
//! - **Report**: [`usage_report`] (the admin API's `GET /.partnergate/api/v1/usage`).

mod counter;
mod report;
#[cfg(test)]
mod tests;

pub use counter::{UsageCounter, DEFAULT_MAX_KEYS, SHARDS};
pub use report::{
    usage_report, OrgUsage, RouteCount, RouteUsage, UsageReport, UsageWindow, UserUsage,
};

use crate::directory::{Store, StoreResult};

/// Days of usage rows kept in the directory (the longest report window is 30).
pub const KEEP_DAYS: i64 = 35;

/// What a flush did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flushed {
    /// Rows added to the store.
    pub rows: usize,
    /// Requests in those rows.
    pub requests: i64,
}

/// Take the counts and add them to the store in one transaction. On failure the counts are
/// put back (within the counter's cap; what does not fit is counted as dropped and
/// logged) and the store's error returned, so the next flush retries them.
///
/// Flushes of one counter run one at a time: the flush at shutdown waits for a periodic
/// one still writing, so the process never exits with counts taken but not yet written.
pub async fn flush(counter: &UsageCounter, store: &dyn Store) -> StoreResult<Flushed> {
    let _one_at_a_time = counter.flushing.lock().await;
    let rows = counter.take();
    if rows.is_empty() {
        return Ok(Flushed::default());
    }
    match store.add_usage(&rows).await {
        Ok(()) => Ok(Flushed {
            rows: rows.len(),
            requests: rows.iter().map(|r| r.requests).sum(),
        }),
        Err(e) => {
            let lost = counter.restore(&rows);
            if lost > 0 {
                tracing::warn!(
                    "usage: {lost} request(s) dropped: the write failed and the in-memory counter is full"
                );
            }
            Err(e)
        }
    }
}
