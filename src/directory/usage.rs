//! Usage data as the directory stores it: request counts per UTC day, org, user and route
//! in `usage_daily`, added to by every gateway instance's flush (docs/reference.md, "Usage
//! data"). The in-memory counting, the flush and the report are the top-level `usage`
//! module, which builds on these types; this module does not depend on it.

use super::model::Timestamp;

/// Seconds in a usage day (days are UTC: `unix seconds / 86400`).
pub const DAY: i64 = 86_400;

/// The usage day of a timestamp (days since 1970-01-01, UTC).
pub fn day_of(ts: Timestamp) -> i64 {
    ts.div_euclid(DAY)
}

/// Requests of one user of one org on one route during one day: a row of `usage_daily`,
/// and what a flush adds to it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UsageRow {
    pub day: i64,
    pub org_id: String,
    pub user_id: String,
    pub route: String,
    pub requests: i64,
}

/// Which usage rows to sum: days from `since_day` on, optionally one org and/or one user
/// (by user id).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageFilter {
    pub since_day: i64,
    pub org: Option<String>,
    pub user: Option<String>,
}

/// Requests of one user of one org on one route, summed over the filter's days, with the
/// user's email (`None` when the user is no longer in the directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageTotal {
    pub org_id: String,
    pub user_id: String,
    pub email: Option<String>,
    pub route: String,
    pub requests: i64,
}
