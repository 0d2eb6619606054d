//! The in-memory side of usage data: request counts per (day, org, user, route), bumped on
//! the request path and taken whole by the periodic flush.
//!
//! Cost on the request path: one uncontended mutex and one hash lookup. Each thread counts
//! in a shard of its own (threads are spread over [`SHARDS`] shards by a thread-local
//! index), so the only other party that ever takes a shard's lock is the flush, once a
//! minute. Inside a shard the map is keyed by user id (`Arc<str>`, looked up by `&str`)
//! and holds the few (day, org, route) slots of that user in a small vector, so a request
//! for a key already counted allocates nothing. The same key may sit in several shards;
//! [`UsageCounter::take`] sums them.
//!
//! Memory is bounded: at most `max_keys` slots over all shards. A request that would need
//! a new slot beyond that is not counted; it is added to the `dropped` counter
//! (`partnergate_usage_dropped_total`) instead, so a loss is never silent.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use prometheus::IntCounter;

use crate::directory::model::Timestamp;
use crate::directory::usage::{day_of, UsageRow};

/// Shards of the counter; threads beyond this many share shards.
pub const SHARDS: usize = 16;

/// The default cap on counted keys (slots) held in memory between two flushes.
pub const DEFAULT_MAX_KEYS: usize = 200_000;

/// Request counts waiting for the next flush.
pub struct UsageCounter {
    shards: Box<[Mutex<Shard>]>,
    /// Slots held over all shards.
    keys: AtomicUsize,
    max_keys: usize,
    /// Requests not counted because the cap was reached.
    dropped: IntCounter,
    /// Held by a flush from its take to the end of its write (see [`super::flush`]).
    pub(super) flushing: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Shard {
    users: HashMap<Arc<str>, Vec<Slot>>,
    /// Org ids and route names, shared by the slots that name them.
    names: HashSet<Arc<str>>,
    /// Slots in `users`.
    keys: usize,
}

/// (day, org, user, route), as [`UsageCounter::take`] merges the shards.
type Key = (i64, Arc<str>, Arc<str>, Arc<str>);

struct Slot {
    day: i64,
    org: Arc<str>,
    route: Arc<str>,
    requests: u64,
}

/// This thread's shard: threads take shards in turn, the first time they count.
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    INDEX.with(|i| *i)
}

fn intern(names: &mut HashSet<Arc<str>>, name: &str) -> Arc<str> {
    if let Some(known) = names.get(name) {
        return known.clone();
    }
    let name: Arc<str> = Arc::from(name);
    names.insert(name.clone());
    name
}

impl UsageCounter {
    /// A counter holding at most `max_keys` keys between flushes; requests beyond that
    /// are added to `dropped`.
    pub fn new(max_keys: usize, dropped: IntCounter) -> Self {
        UsageCounter {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            keys: AtomicUsize::new(0),
            max_keys,
            dropped,
            flushing: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self, shard: usize) -> MutexGuard<'_, Shard> {
        // Nothing in a shard can be left half-updated by a panic: keep counting.
        self.shards[shard]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Count one request of `user` (of `org`) on `route` at `now`.
    pub fn record(&self, now: Timestamp, org: &str, user: &str, route: &str) {
        self.add(shard_index(), day_of(now), org, user, route, 1);
    }

    /// Add `requests` to a key in `shard`; false (and `dropped` counts them) when the key
    /// is new and the cap is reached.
    fn add(&self, shard: usize, day: i64, org: &str, user: &str, route: &str, n: u64) -> bool {
        let mut guard = self.lock(shard);
        let Shard { users, names, keys } = &mut *guard;
        if let Some(slots) = users.get_mut(user) {
            let found = slots
                .iter_mut()
                .find(|s| s.day == day && *s.route == *route && *s.org == *org);
            if let Some(slot) = found {
                slot.requests = slot.requests.saturating_add(n);
                return true;
            }
        }
        let reserved = self
            .keys
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |k| {
                (k < self.max_keys).then_some(k + 1)
            })
            .is_ok();
        if !reserved {
            drop(guard);
            self.dropped.inc_by(n);
            return false;
        }
        *keys += 1;
        let slot = Slot {
            day,
            org: intern(names, org),
            route: intern(names, route),
            requests: n,
        };
        match users.get_mut(user) {
            Some(slots) => slots.push(slot),
            None => {
                users.insert(Arc::from(user), vec![slot]);
            }
        }
        true
    }

    /// Keys held now (over all shards; one key counted in two shards counts twice).
    pub fn keys(&self) -> usize {
        self.keys.load(Ordering::Acquire)
    }

    /// Requests dropped so far because the cap was reached.
    pub fn dropped(&self) -> u64 {
        self.dropped.get()
    }

    /// Take every count, leaving the counter empty: one row per key, summed over the
    /// shards, sorted by key. Requests counted meanwhile wait for the next take.
    pub fn take(&self) -> Vec<UsageRow> {
        let mut merged: HashMap<Key, u64> = HashMap::new();
        for shard in 0..self.shards.len() {
            let users = {
                let mut guard = self.lock(shard);
                self.keys.fetch_sub(guard.keys, Ordering::AcqRel);
                guard.keys = 0;
                guard.names.clear();
                std::mem::take(&mut guard.users)
            };
            for (user, slots) in users {
                for slot in slots {
                    let key = (slot.day, slot.org, user.clone(), slot.route);
                    let n = merged.entry(key).or_default();
                    *n = n.saturating_add(slot.requests);
                }
            }
        }
        let mut rows: Vec<UsageRow> = merged
            .into_iter()
            .map(|((day, org, user, route), n)| UsageRow {
                day,
                org_id: org.to_string(),
                user_id: user.to_string(),
                route: route.to_string(),
                requests: i64::try_from(n).unwrap_or(i64::MAX),
            })
            .collect();
        rows.sort_unstable();
        rows
    }

    /// Put back rows taken by [`UsageCounter::take`] whose write failed, adding them to
    /// what was counted since. The cap applies: returns the requests that did not fit
    /// (also added to `dropped`).
    pub fn restore(&self, rows: &[UsageRow]) -> u64 {
        let shard = shard_index();
        let mut lost = 0u64;
        for row in rows {
            let n = u64::try_from(row.requests).unwrap_or(0);
            if n == 0 {
                continue;
            }
            if !self.add(shard, row.day, &row.org_id, &row.user_id, &row.route, n) {
                lost = lost.saturating_add(n);
            }
        }
        lost
    }
}
