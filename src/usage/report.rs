//! The usage report behind `GET /.partnergate/api/v1/usage?window=7d&org=&user=`: request
//! counts per org, per user (with email) and per route over the last 1, 7 or 30 days.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::directory::model::Timestamp;
use crate::directory::usage::{day_of, UsageFilter, UsageTotal, DAY};
use crate::directory::{Store, StoreResult};

/// The span of a usage report: the last 1, 7 or 30 UTC days, today (so far) included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum UsageWindow {
    #[serde(rename = "1d")]
    Day,
    #[serde(rename = "7d")]
    Week,
    #[serde(rename = "30d")]
    Month,
}

impl UsageWindow {
    pub const ALL: [UsageWindow; 3] = [UsageWindow::Day, UsageWindow::Week, UsageWindow::Month];

    pub fn as_str(self) -> &'static str {
        match self {
            UsageWindow::Day => "1d",
            UsageWindow::Week => "7d",
            UsageWindow::Month => "30d",
        }
    }

    /// UTC days covered, today included.
    pub fn days(self) -> i64 {
        match self {
            UsageWindow::Day => 1,
            UsageWindow::Week => 7,
            UsageWindow::Month => 30,
        }
    }

    /// The first day the window covers when today is `day_of(now)`.
    pub fn since_day(self, now: Timestamp) -> i64 {
        day_of(now) - (self.days() - 1)
    }
}

impl fmt::Display for UsageWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for UsageWindow {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        UsageWindow::ALL
            .into_iter()
            .find(|w| w.as_str() == s)
            .ok_or_else(|| format!("window {s:?} is not one of 1d, 7d, 30d"))
    }
}

/// Requests on one route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteCount {
    pub route: String,
    pub requests: i64,
}

/// One org's usage: its total, how many of its users made requests, and per route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrgUsage {
    pub org: String,
    pub requests: i64,
    pub users: usize,
    pub routes: Vec<RouteCount>,
}

/// One user's usage within one org (a user moved between orgs has one entry per org).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserUsage {
    pub user_id: String,
    /// `null` when the user is no longer in the directory.
    pub email: Option<String>,
    pub org: String,
    pub requests: i64,
    pub routes: Vec<RouteCount>,
}

/// One route's usage over every org and user in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteUsage {
    pub route: String,
    pub requests: i64,
    pub users: usize,
}

/// The usage report. JSON:
///
/// ```json
/// {
///   "window": "7d",
///   "from": "2026-03-02",
///   "to": "2026-03-08",
///   "org": "acme",
///   "user": null,
///   "total": 42,
///   "orgs": [
///     {"org": "acme", "requests": 42, "users": 2,
///      "routes": [{"route": "dashboard", "requests": 30}, {"route": "reports", "requests": 12}]}
///   ],
///   "users": [
///     {"user_id": "u-1f…", "email": "bob@acme.example", "org": "acme", "requests": 40,
///      "routes": [{"route": "dashboard", "requests": 28}, {"route": "reports", "requests": 12}]},
///     {"user_id": "u-9a…", "email": "alice@acme.example", "org": "acme", "requests": 2,
///      "routes": [{"route": "dashboard", "requests": 2}]}
///   ],
///   "routes": [
///     {"route": "dashboard", "requests": 30, "users": 2},
///     {"route": "reports", "requests": 12, "users": 1}
///   ]
/// }
/// ```
///
/// `from` and `to` are the first and last UTC day counted (`to` is today, so far); `org`
/// and `user` echo the filters (`null` = all). Every list is sorted by `requests`, most
/// first, then by name/id; `users` counts distinct users with requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageReport {
    pub window: UsageWindow,
    pub from: String,
    pub to: String,
    pub org: Option<String>,
    pub user: Option<String>,
    pub total: i64,
    pub orgs: Vec<OrgUsage>,
    pub users: Vec<UserUsage>,
    pub routes: Vec<RouteUsage>,
}

/// `YYYY-MM-DD` of a usage day.
fn date(day: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(day.saturating_mul(DAY))
        .map(|t| t.date().to_string())
        .unwrap_or_default()
}

/// The usage report for `window` ending today (`now`), optionally for one org and/or one
/// user (a user id, or an email, looked up in the directory; an unknown email gives an
/// empty report). Callers scope it: a delegated partner admin must only get their own org.
pub async fn usage_report(
    store: &dyn Store,
    org: Option<&str>,
    user: Option<&str>,
    window: UsageWindow,
    now: Timestamp,
) -> StoreResult<UsageReport> {
    let since_day = window.since_day(now);
    let user_id = match user {
        Some(u) if u.contains('@') => match store.user_by_email(u).await? {
            Some(record) => Some(record.id),
            None => None,
        },
        Some(u) => Some(u.to_string()),
        None => None,
    };
    let totals = if user.is_some() && user_id.is_none() {
        Vec::new()
    } else {
        let filter = UsageFilter {
            since_day,
            org: org.map(str::to_string),
            user: user_id,
        };
        store.usage(&filter).await?
    };
    let mut report = build(&totals, window);
    report.from = date(since_day);
    report.to = date(day_of(now));
    report.org = org.map(str::to_string);
    report.user = user.map(str::to_string);
    Ok(report)
}

/// Most requests first, then by name.
fn ranked<T>(items: &mut [T], key: impl Fn(&T) -> (i64, &str)) {
    items.sort_by(|a, b| {
        let (ra, na) = key(a);
        let (rb, nb) = key(b);
        rb.cmp(&ra).then_with(|| na.cmp(nb))
    });
}

fn route_counts(routes: BTreeMap<&str, i64>) -> Vec<RouteCount> {
    let mut out: Vec<RouteCount> = routes
        .into_iter()
        .map(|(route, requests)| RouteCount {
            route: route.to_string(),
            requests,
        })
        .collect();
    ranked(&mut out, |r| (r.requests, r.route.as_str()));
    out
}

/// The report's totals and lists from the summed rows (dates and filters left empty).
fn build(totals: &[UsageTotal], window: UsageWindow) -> UsageReport {
    #[derive(Default)]
    struct Acc<'a> {
        requests: i64,
        users: BTreeSet<&'a str>,
        routes: BTreeMap<&'a str, i64>,
    }
    let mut orgs: BTreeMap<&str, Acc> = BTreeMap::new();
    let mut users: BTreeMap<(&str, &str), (Option<&str>, Acc)> = BTreeMap::new();
    let mut routes: BTreeMap<&str, Acc> = BTreeMap::new();
    let mut total = 0i64;
    for t in totals {
        total = total.saturating_add(t.requests);
        let org = orgs.entry(t.org_id.as_str()).or_default();
        org.requests = org.requests.saturating_add(t.requests);
        org.users.insert(t.user_id.as_str());
        *org.routes.entry(t.route.as_str()).or_default() += t.requests;
        let (_, user) = users
            .entry((t.user_id.as_str(), t.org_id.as_str()))
            .or_insert_with(|| (t.email.as_deref(), Acc::default()));
        user.requests = user.requests.saturating_add(t.requests);
        *user.routes.entry(t.route.as_str()).or_default() += t.requests;
        let route = routes.entry(t.route.as_str()).or_default();
        route.requests = route.requests.saturating_add(t.requests);
        route.users.insert(t.user_id.as_str());
    }
    let mut orgs: Vec<OrgUsage> = orgs
        .into_iter()
        .map(|(org, acc)| OrgUsage {
            org: org.to_string(),
            requests: acc.requests,
            users: acc.users.len(),
            routes: route_counts(acc.routes),
        })
        .collect();
    ranked(&mut orgs, |o| (o.requests, o.org.as_str()));
    let mut users: Vec<UserUsage> = users
        .into_iter()
        .map(|((user_id, org), (email, acc))| UserUsage {
            user_id: user_id.to_string(),
            email: email.map(str::to_string),
            org: org.to_string(),
            requests: acc.requests,
            routes: route_counts(acc.routes),
        })
        .collect();
    ranked(&mut users, |u| (u.requests, u.user_id.as_str()));
    let mut routes: Vec<RouteUsage> = routes
        .into_iter()
        .map(|(route, acc)| RouteUsage {
            route: route.to_string(),
            requests: acc.requests,
            users: acc.users.len(),
        })
        .collect();
    ranked(&mut routes, |r| (r.requests, r.route.as_str()));
    UsageReport {
        window,
        from: String::new(),
        to: String::new(),
        org: None,
        user: None,
        total,
        orgs,
        users,
        routes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn total(org: &str, user: &str, route: &str, requests: i64) -> UsageTotal {
        UsageTotal {
            org_id: org.into(),
            user_id: user.into(),
            email: Some(format!("{user}@{org}.example")),
            route: route.into(),
            requests,
        }
    }

    #[test]
    fn windows_parse_and_cover_whole_utc_days() {
        assert_eq!("7d".parse::<UsageWindow>(), Ok(UsageWindow::Week));
        assert!("2d".parse::<UsageWindow>().is_err());
        // 2026-03-08T12:00:00Z is day 20520.
        let now = 1_772_971_200;
        assert_eq!(day_of(now), 20_520);
        assert_eq!(UsageWindow::Day.since_day(now), 20_520);
        assert_eq!(UsageWindow::Week.since_day(now), 20_514);
        assert_eq!(UsageWindow::Month.since_day(now), 20_491);
        assert_eq!(date(20_520), "2026-03-08");
        assert_eq!(date(20_514), "2026-03-02");
    }

    #[test]
    fn totals_per_org_user_and_route_sorted_by_requests() {
        let rows = [
            total("acme", "alice", "dashboard", 2),
            total("acme", "bob", "dashboard", 28),
            total("acme", "bob", "reports", 12),
            total("globex", "dave", "reports", 5),
        ];
        let report = build(&rows, UsageWindow::Week);
        assert_eq!(report.total, 47);
        let orgs: Vec<_> = report
            .orgs
            .iter()
            .map(|o| (o.org.as_str(), o.requests, o.users))
            .collect();
        assert_eq!(orgs, [("acme", 42, 2), ("globex", 5, 1)]);
        assert_eq!(
            report.orgs[0].routes,
            [
                RouteCount {
                    route: "dashboard".into(),
                    requests: 30
                },
                RouteCount {
                    route: "reports".into(),
                    requests: 12
                }
            ]
        );
        let users: Vec<_> = report
            .users
            .iter()
            .map(|u| (u.user_id.as_str(), u.requests, u.routes.len()))
            .collect();
        assert_eq!(users, [("bob", 40, 2), ("dave", 5, 1), ("alice", 2, 1)]);
        assert_eq!(report.users[0].email.as_deref(), Some("bob@acme.example"));
        let routes: Vec<_> = report
            .routes
            .iter()
            .map(|r| (r.route.as_str(), r.requests, r.users))
            .collect();
        assert_eq!(routes, [("dashboard", 30, 2), ("reports", 17, 2)]);
    }

    #[test]
    fn json_shape() {
        let mut report = build(&[total("acme", "bob", "dashboard", 3)], UsageWindow::Day);
        report.from = "2026-03-08".into();
        report.to = "2026-03-08".into();
        report.org = Some("acme".into());
        let json = serde_json::to_value(&report).expect("serialises");
        assert_eq!(
            json,
            serde_json::json!({
                "window": "1d",
                "from": "2026-03-08",
                "to": "2026-03-08",
                "org": "acme",
                "user": null,
                "total": 3,
                "orgs": [{"org": "acme", "requests": 3, "users": 1,
                          "routes": [{"route": "dashboard", "requests": 3}]}],
                "users": [{"user_id": "bob", "email": "bob@acme.example", "org": "acme",
                           "requests": 3, "routes": [{"route": "dashboard", "requests": 3}]}],
                "routes": [{"route": "dashboard", "requests": 3, "users": 1}]
            })
        );
    }
}
