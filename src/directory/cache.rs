//! The directory as the request path sees it: the [`Store`] behind moka caches for
//! identities and email → user id, with explicit invalidation used by every write.
//!
//! Store calls run on the background runtime (`runtime`), never on the proxy's
//! threads' own I/O: a cache miss hands the query over and awaits the answer.

use std::future::Future;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moka::sync::Cache;
use prometheus::IntCounter;

use super::model::{Identity, Timestamp};
use super::store::{Store, StoreError, StoreResult};

/// How often a user's `last_seen_at` may be written (at most once a minute).
pub const TOUCH_EVERY: i64 = 60;

/// An identity in the cache, with the throttle of its `last_seen_at` updates.
#[derive(Debug)]
pub struct CachedIdentity {
    pub identity: Arc<Identity>,
    /// The directory generation this identity was loaded under (assertion reuse key).
    pub generation: u64,
    /// The identity header values, built once per load rather than per request.
    pub headers: IdentityHeaderValues,
    touched: AtomicI64,
}

impl CachedIdentity {
    /// An identity as loaded under directory `generation`.
    pub fn new(identity: Identity, generation: u64) -> Self {
        CachedIdentity {
            headers: IdentityHeaderValues::of(&identity),
            identity: Arc::new(identity),
            generation,
            touched: AtomicI64::new(0),
        }
    }
}

/// `X-Partner-User`, `-User-Id`, `-Org`, `-Org-Type` and `-Roles` as header values.
#[derive(Debug, Clone)]
pub struct IdentityHeaderValues {
    pub user: http::HeaderValue,
    pub user_id: http::HeaderValue,
    pub org: http::HeaderValue,
    pub org_type: http::HeaderValue,
    pub roles: http::HeaderValue,
}

impl IdentityHeaderValues {
    pub fn of(identity: &Identity) -> Self {
        // Directory values are validated on import; a control character would make the
        // value unusable, and an empty header is the safe answer then.
        let value = |s: &str| {
            http::HeaderValue::from_bytes(s.as_bytes())
                .unwrap_or_else(|_| http::HeaderValue::from_static(""))
        };
        IdentityHeaderValues {
            user: value(&identity.email),
            user_id: value(&identity.user_id),
            org: value(&identity.org.id),
            org_type: value(&identity.org.org_type),
            roles: value(&identity.roles.join(",")),
        }
    }
}

/// Cache hit and miss counters (`partnergate_directory_cache_requests_total`).
#[derive(Clone)]
pub struct CacheCounters {
    pub hit: IntCounter,
    pub miss: IntCounter,
}

/// The caches' hasher: keyed per process and fast (the default SipHash cost more than the
/// lookup itself on the request path).
type Hasher = foldhash::fast::RandomState;

pub struct Directory {
    store: Arc<dyn Store>,
    runtime: tokio::runtime::Handle,
    identities: Cache<String, Arc<CachedIdentity>, Hasher>,
    emails: Cache<String, String, Hasher>,
    generation: AtomicU64,
    counters: CacheCounters,
    /// user id → last request time, waiting to be written by [`Directory::flush_activity`].
    seen: Mutex<Vec<(String, Timestamp)>>,
    /// Wakes this process's change watcher (see [`Directory::changed_here`]).
    watcher_wake: Arc<tokio::sync::Notify>,
    /// A change was written by this process since the watcher last looked.
    local_change: std::sync::atomic::AtomicBool,
}

impl Directory {
    pub fn new(
        store: Arc<dyn Store>,
        runtime: tokio::runtime::Handle,
        capacity: u64,
        ttl: Duration,
        counters: CacheCounters,
    ) -> Self {
        Directory {
            store,
            runtime,
            identities: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .support_invalidation_closures()
                .build_with_hasher(Hasher::default()),
            emails: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build_with_hasher(Hasher::default()),
            generation: AtomicU64::new(1),
            counters,
            seen: Mutex::new(Vec::new()),
            watcher_wake: Arc::new(tokio::sync::Notify::new()),
            local_change: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// This process wrote a directory change (the admin API, a sweep): wake the change
    /// watcher now, which applies it and announces it to the other instances (Redis
    /// fan-out), instead of at its next poll.
    pub fn changed_here(&self) {
        self.local_change.store(true, Ordering::Release);
        self.watcher_wake.notify_one();
    }

    /// Whether [`Directory::changed_here`] was called since the last call of this.
    pub fn take_local_change(&self) -> bool {
        self.local_change.swap(false, Ordering::AcqRel)
    }

    /// The wake-up of this process's change watcher.
    pub fn watcher_wake(&self) -> Arc<tokio::sync::Notify> {
        self.watcher_wake.clone()
    }

    /// Bumped by every invalidation; signed assertions are reused only within one.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Run a store call on the background runtime and wait for it.
    pub async fn call<T, F, Fut>(&self, f: F) -> StoreResult<T>
    where
        F: FnOnce(Arc<dyn Store>) -> Fut,
        Fut: Future<Output = StoreResult<T>> + Send + 'static,
        T: Send + 'static,
    {
        let task = self.runtime.spawn(f(self.store.clone()));
        task.await
            .map_err(|e| StoreError::Unavailable(format!("directory task failed: {e}")))?
    }

    /// The identity of `user_id`, from the cache or the store. `Ok(None)`: no such user.
    pub async fn identity(&self, user_id: &str) -> StoreResult<Option<Arc<CachedIdentity>>> {
        if let Some(hit) = self.identities.get(user_id) {
            self.counters.hit.inc();
            return Ok(Some(hit));
        }
        self.counters.miss.inc();
        let generation = self.generation();
        let id = user_id.to_string();
        let loaded = self
            .call(move |s| async move { s.identity(&id).await })
            .await?;
        Ok(loaded.map(|identity| {
            let entry = Arc::new(CachedIdentity::new(identity, generation));
            // Do not cache what an invalidation raced past.
            if self.generation() == generation {
                self.identities.insert(user_id.to_string(), entry.clone());
            }
            entry
        }))
    }

    /// The user id for an email (bearer tokens name users by email).
    pub async fn user_id_by_email(&self, email: &str) -> StoreResult<Option<String>> {
        // Emails are stored lower-case; most tokens carry them so already.
        let hit = if email.bytes().any(|b| b.is_ascii_uppercase()) {
            self.emails.get(email.to_ascii_lowercase().as_str())
        } else {
            self.emails.get(email)
        };
        if let Some(id) = hit {
            self.counters.hit.inc();
            return Ok(Some(id));
        }
        let email = email.to_ascii_lowercase();
        self.counters.miss.inc();
        let key = email.clone();
        let user = self
            .call(move |s| async move { s.user_by_email(&key).await })
            .await?;
        Ok(user.map(|u| {
            self.emails.insert(email, u.id.clone());
            u.id
        }))
    }

    /// The user a bearer token's user claim names: by email when it holds an `@`, else
    /// the claim is the user id itself. `Ok(None)`: no user with that email.
    pub async fn user_id_for_claim(&self, claim: &str) -> StoreResult<Option<String>> {
        if claim.contains('@') {
            self.user_id_by_email(claim).await
        } else {
            Ok(Some(claim.to_string()))
        }
    }

    /// Drop everything cached about a user (status, roles or grants changed).
    pub fn invalidate_user(&self, user_id: &str) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.identities.invalidate(user_id);
    }

    /// Drop every cached identity of an org's users (org suspended, type changed…).
    pub fn invalidate_org(&self, org_id: &str) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        let org = org_id.to_string();
        if let Err(e) = self
            .identities
            .invalidate_entries_if(move |_, v| v.identity.org.id == org)
        {
            tracing::warn!("org cache invalidation fell back to a full clear: {e}");
            self.identities.invalidate_all();
        }
    }

    /// Drop every cached identity and email (bulk changes such as an import).
    pub fn invalidate_all(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.identities.invalidate_all();
        self.emails.invalidate_all();
    }

    /// Note a request by the user; cheap, and queues a `last_seen_at` write at most once
    /// a minute per user.
    pub fn saw(&self, entry: &CachedIdentity, now: Timestamp) {
        let last = entry.touched.load(Ordering::Relaxed);
        if now - last < TOUCH_EVERY {
            return;
        }
        if entry
            .touched
            .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            if let Ok(mut seen) = self.seen.lock() {
                seen.push((entry.identity.user_id.clone(), now));
            }
        }
    }

    /// Write the queued `last_seen_at` updates (called by a background task).
    pub async fn flush_activity(&self) -> StoreResult<usize> {
        let batch = match self.seen.lock() {
            Ok(mut seen) => std::mem::take(&mut *seen),
            Err(_) => return Ok(0),
        };
        if batch.is_empty() {
            return Ok(0);
        }
        let n = batch.len();
        self.store.touch_users(&batch).await?;
        Ok(n)
    }
}
