//! The in-memory counter and the flush: counting, taking, the cap, and putting counts
//! back when the write fails.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;

use prometheus::IntCounter;

use super::*;
use crate::directory::usage::{UsageFilter, UsageRow};

/// 2026-03-08T12:00:00Z (day 20520).
const NOW: i64 = 1_772_971_200;
const TODAY: i64 = 20_520;

fn counter(max_keys: usize) -> UsageCounter {
    let dropped = IntCounter::new("dropped", "test").unwrap();
    UsageCounter::new(max_keys, dropped)
}

fn row(day: i64, org: &str, user: &str, route: &str, requests: i64) -> UsageRow {
    UsageRow {
        day,
        org_id: org.into(),
        user_id: user.into(),
        route: route.into(),
        requests,
    }
}

#[test]
fn counts_per_day_org_user_and_route() {
    let c = counter(100);
    for _ in 0..3 {
        c.record(NOW, "acme", "u-bob", "dashboard");
    }
    c.record(NOW, "acme", "u-bob", "reports");
    c.record(NOW, "acme", "u-alice", "dashboard");
    // The next UTC day is a key of its own; so is the same user under another org.
    c.record(NOW + 86_400, "acme", "u-bob", "dashboard");
    c.record(NOW, "globex", "u-bob", "dashboard");
    assert_eq!(c.keys(), 5);
    assert_eq!(
        c.take(),
        [
            row(TODAY, "acme", "u-alice", "dashboard", 1),
            row(TODAY, "acme", "u-bob", "dashboard", 3),
            row(TODAY, "acme", "u-bob", "reports", 1),
            row(TODAY, "globex", "u-bob", "dashboard", 1),
            row(TODAY + 1, "acme", "u-bob", "dashboard", 1),
        ]
    );
    assert_eq!(c.dropped(), 0);
}

#[test]
fn take_empties_the_counter_and_later_counts_start_from_zero() {
    let c = counter(100);
    c.record(NOW, "acme", "u-bob", "dashboard");
    assert_eq!(c.take().len(), 1);
    assert_eq!(c.keys(), 0);
    assert!(c.take().is_empty());
    c.record(NOW, "acme", "u-bob", "dashboard");
    c.record(NOW, "acme", "u-bob", "dashboard");
    assert_eq!(c.take(), [row(TODAY, "acme", "u-bob", "dashboard", 2)]);
}

#[test]
fn threads_count_in_their_own_shards_and_take_sums_them() {
    let c = Arc::new(counter(1_000));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let c = c.clone();
            std::thread::spawn(move || {
                for i in 0..1_000 {
                    let route = if i % 2 == 0 { "dashboard" } else { "reports" };
                    c.record(NOW, "acme", "u-bob", route);
                    c.record(NOW, "acme", &format!("u-{t}"), "dashboard");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let rows = c.take();
    let get = |user: &str, route: &str| {
        rows.iter()
            .find(|r| r.user_id == user && r.route == route)
            .map(|r| r.requests)
    };
    assert_eq!(get("u-bob", "dashboard"), Some(4_000));
    assert_eq!(get("u-bob", "reports"), Some(4_000));
    for t in 0..8 {
        assert_eq!(get(&format!("u-{t}"), "dashboard"), Some(1_000));
    }
    assert_eq!(rows.len(), 10, "one row per key, whatever the shards");
    assert_eq!(c.keys(), 0);
}

#[test]
fn new_keys_beyond_the_cap_are_dropped_and_counted() {
    let c = counter(2);
    c.record(NOW, "acme", "u-1", "dashboard");
    c.record(NOW, "acme", "u-2", "dashboard");
    c.record(NOW, "acme", "u-3", "dashboard");
    c.record(NOW, "acme", "u-1", "reports");
    // Keys already held keep counting at the cap.
    c.record(NOW, "acme", "u-1", "dashboard");
    assert_eq!(c.keys(), 2);
    assert_eq!(c.dropped(), 2);
    assert_eq!(
        c.take(),
        [
            row(TODAY, "acme", "u-1", "dashboard", 2),
            row(TODAY, "acme", "u-2", "dashboard", 1),
        ]
    );
    // A take frees the room.
    c.record(NOW, "acme", "u-3", "dashboard");
    assert_eq!(c.keys(), 1);
    assert_eq!(c.dropped(), 2);
}

#[test]
fn restore_adds_back_and_respects_the_cap() {
    let c = counter(3);
    c.record(NOW, "acme", "u-1", "dashboard");
    let taken = c.take();
    // Counted while the write was in flight.
    c.record(NOW, "acme", "u-1", "dashboard");
    c.record(NOW, "acme", "u-2", "dashboard");
    c.record(NOW, "acme", "u-3", "dashboard");
    let more = [taken[0].clone(), row(TODAY, "acme", "u-4", "dashboard", 7)];
    assert_eq!(c.restore(&more), 7, "u-4 does not fit");
    assert_eq!(c.dropped(), 7);
    assert_eq!(
        c.take(),
        [
            row(TODAY, "acme", "u-1", "dashboard", 2),
            row(TODAY, "acme", "u-2", "dashboard", 1),
            row(TODAY, "acme", "u-3", "dashboard", 1),
        ]
    );
}

/// A store without the `usage_daily` table (not migrated) refuses the flush; once it is
/// migrated the next flush writes the counts kept in memory, nothing lost or doubled.
#[tokio::test]
async fn a_failed_flush_keeps_the_counts_for_the_next() {
    let dir = tempfile::TempDir::new().unwrap();
    let url = format!("sqlite://{}/usage.db", dir.path().display());
    let store = crate::directory::open(&url).await.unwrap();
    let c = counter(100);
    c.record(NOW, "acme", "u-bob", "dashboard");
    c.record(NOW, "acme", "u-bob", "dashboard");
    assert!(flush(&c, &*store).await.is_err());
    assert_eq!(c.keys(), 1, "the counts are back");
    c.record(NOW, "acme", "u-bob", "dashboard");
    c.record(NOW, "acme", "u-bob", "reports");

    store.migrate().await.unwrap();
    let done = flush(&c, &*store).await.unwrap();
    assert_eq!(
        done,
        Flushed {
            rows: 2,
            requests: 4
        }
    );
    assert_eq!(flush(&c, &*store).await.unwrap(), Flushed::default());
    let totals = store
        .usage(&UsageFilter {
            since_day: TODAY,
            ..UsageFilter::default()
        })
        .await
        .unwrap();
    let counts: Vec<_> = totals
        .iter()
        .map(|t| (t.route.as_str(), t.requests, t.email.clone()))
        .collect();
    assert_eq!(counts, [("dashboard", 3, None), ("reports", 1, None)]);
    assert_eq!(c.dropped(), 0);
}

/// A flush waits for one still writing (the shutdown flush behind a periodic one) before
/// it takes anything.
#[tokio::test]
async fn flushes_run_one_at_a_time() {
    let dir = tempfile::TempDir::new().unwrap();
    let url = format!("sqlite://{}/usage.db", dir.path().display());
    let store = crate::directory::connect(&url).await.unwrap();
    let c = Arc::new(counter(100));
    c.record(NOW, "acme", "u-bob", "dashboard");
    let busy = c.flushing.lock().await;
    let task = {
        let (c, store) = (c.clone(), store.clone());
        tokio::spawn(async move { flush(&c, &*store).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(!task.is_finished());
    assert_eq!(c.keys(), 1, "nothing taken while another flush runs");
    drop(busy);
    assert_eq!(task.await.unwrap().unwrap().requests, 1);
}
