//! Server-side login sessions: random tokens in a cookie, their SHA-256 in the directory,
//! idle and absolute expiry, and a cache in front so a request with a known session never
//! waits on the database.

mod attempt;
pub mod cookie;
mod login;
mod login_audit;
mod token;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moka::sync::Cache;

use crate::clock::Clock;
use crate::directory::{Amr, Directory, SessionRecord, StoreResult, Timestamp, TOUCH_EVERY};

pub use attempt::{normalized_email, LoginAttempt, LoginResult};
pub use login::{IpLockouts, LoginError, LoginOutcome, LoginService, Proof, SecondStep};
pub use token::{hash_token, new_token, token_shape_ok};

/// A session known to this instance.
#[derive(Debug)]
pub struct LiveSession {
    pub id_hash: String,
    pub user_id: String,
    pub created_at: Timestamp,
    /// Absolute expiry.
    pub expires_at: Timestamp,
    /// How the user authenticated when the session began (at `created_at`).
    pub amr: Amr,
    last_seen: AtomicI64,
    flushed: AtomicI64,
}

impl LiveSession {
    fn from_record(r: SessionRecord) -> Self {
        LiveSession {
            last_seen: AtomicI64::new(r.last_seen_at),
            flushed: AtomicI64::new(r.last_seen_at),
            id_hash: r.id_hash,
            user_id: r.user_id,
            created_at: r.created_at,
            expires_at: r.expires_at,
            amr: r.amr,
        }
    }

    pub fn last_seen(&self) -> Timestamp {
        self.last_seen.load(Ordering::Relaxed)
    }

    /// When the session ends if nothing else happens.
    pub fn idle_expires_at(&self, idle: Duration) -> Timestamp {
        (self.last_seen() + idle.as_secs() as i64).min(self.expires_at)
    }
}

/// What a session cookie turned out to be.
#[derive(Debug, Clone)]
pub enum SessionState {
    Valid(Arc<LiveSession>),
    /// No such session (never existed, logged out, or swept).
    Unknown,
    /// Idle for longer than `idle_timeout`.
    Idle,
    /// Older than `absolute_timeout`.
    Expired,
}

impl SessionState {
    pub fn reason(&self) -> &'static str {
        match self {
            SessionState::Valid(_) => "ok",
            SessionState::Unknown => "unknown_session",
            SessionState::Idle => "session_idle",
            SessionState::Expired => "session_expired",
        }
    }
}

/// A session just created at login; `token` goes into the cookie and nowhere else.
pub struct NewSession {
    pub token: String,
    pub session: Arc<LiveSession>,
}

pub struct Sessions {
    directory: Arc<Directory>,
    clock: Arc<dyn Clock>,
    cache: Cache<String, Arc<LiveSession>, foldhash::fast::RandomState>,
    /// (id_hash, last seen) waiting to be written.
    touched: Mutex<Vec<(String, Timestamp)>>,
}

impl Sessions {
    pub fn new(directory: Arc<Directory>, clock: Arc<dyn Clock>, capacity: u64) -> Self {
        Sessions {
            directory,
            clock,
            cache: Cache::builder()
                .max_capacity(capacity)
                // Re-read from the directory now and then so a logout or an idle
                // timeout seen by another instance is noticed here too.
                .time_to_live(Duration::from_secs(60))
                .support_invalidation_closures()
                .build_with_hasher(foldhash::fast::RandomState::default()),
            touched: Mutex::new(Vec::new()),
        }
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn directory(&self) -> &Arc<Directory> {
        &self.directory
    }

    /// Resolve a cookie value. Malformed tokens are `Unknown` without a lookup.
    pub async fn resolve(&self, token: &str, idle: Duration) -> StoreResult<SessionState> {
        if !token_shape_ok(token) {
            return Ok(SessionState::Unknown);
        }
        let id_hash = hash_token(token);
        let now = self.clock.now();
        let live = match self.cache.get(&id_hash) {
            Some(live) => live,
            None => match self.load(&id_hash).await? {
                Some(live) => live,
                None => return Ok(SessionState::Unknown),
            },
        };
        if now >= live.expires_at {
            self.forget(&id_hash).await;
            return Ok(SessionState::Expired);
        }
        if now - live.last_seen() >= idle.as_secs() as i64 {
            // Another instance may have seen the user more recently.
            let fresh = self.load(&id_hash).await?;
            match fresh {
                Some(f) if now - f.last_seen() < idle.as_secs() as i64 => {
                    return Ok(self.seen(f, now))
                }
                _ => {
                    self.forget(&id_hash).await;
                    return Ok(SessionState::Idle);
                }
            }
        }
        Ok(self.seen(live, now))
    }

    fn seen(&self, live: Arc<LiveSession>, now: Timestamp) -> SessionState {
        if live.last_seen.load(Ordering::Relaxed) != now {
            live.last_seen.store(now, Ordering::Relaxed);
            let flushed = live.flushed.load(Ordering::Relaxed);
            if now - flushed >= TOUCH_EVERY
                && live
                    .flushed
                    .compare_exchange(flushed, now, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                if let Ok(mut touched) = self.touched.lock() {
                    touched.push((live.id_hash.clone(), now));
                }
            }
        }
        SessionState::Valid(live)
    }

    async fn load(&self, id_hash: &str) -> StoreResult<Option<Arc<LiveSession>>> {
        let key = id_hash.to_string();
        let record = self
            .directory
            .call(move |s| async move { s.session(&key).await })
            .await?;
        Ok(record.map(|r| {
            let live = Arc::new(LiveSession::from_record(r));
            self.cache.insert(id_hash.to_string(), live.clone());
            live
        }))
    }

    async fn forget(&self, id_hash: &str) {
        self.cache.invalidate(id_hash);
        let key = id_hash.to_string();
        if let Err(e) = self
            .directory
            .call(move |s| async move { s.delete_session(&key).await })
            .await
        {
            tracing::warn!("could not delete an expired session: {e}");
        }
    }

    /// Whether the session `id_hash` still exists (this cache, else the directory); expiry
    /// is not looked at. Used to re-check open streams after a directory change: a user's
    /// sessions are only deleted together with a change for the user (logout everywhere,
    /// suspension), which drops them from this cache first.
    pub async fn exists(&self, id_hash: &str) -> StoreResult<bool> {
        if self.cache.contains_key(id_hash) {
            return Ok(true);
        }
        Ok(self.load(id_hash).await?.is_some())
    }

    /// Start a session for `user_id`, authenticated by `amr` now (a new random token every
    /// time).
    pub async fn create(
        &self,
        user_id: &str,
        amr: Amr,
        absolute: Duration,
    ) -> StoreResult<NewSession> {
        let token = new_token();
        let now = self.clock.now();
        let record = SessionRecord {
            id_hash: hash_token(&token),
            user_id: user_id.to_string(),
            created_at: now,
            last_seen_at: now,
            expires_at: now + absolute.as_secs() as i64,
            amr,
        };
        let insert = record.clone();
        self.directory
            .call(move |s| async move { s.insert_session(&insert).await })
            .await?;
        let live = Arc::new(LiveSession::from_record(record));
        self.cache.insert(live.id_hash.clone(), live.clone());
        Ok(NewSession {
            token,
            session: live,
        })
    }

    /// End the session of a cookie value (logout). Unknown tokens are fine.
    pub async fn end(&self, token: &str) -> StoreResult<()> {
        if !token_shape_ok(token) {
            return Ok(());
        }
        let id_hash = hash_token(token);
        self.cache.invalidate(&id_hash);
        self.directory
            .call(move |s| async move { s.delete_session(&id_hash).await })
            .await
    }

    /// The user's sessions, newest first (the account page).
    pub async fn of_user(&self, user_id: &str) -> StoreResult<Vec<SessionRecord>> {
        let id = user_id.to_string();
        let now = self.clock.now();
        let mut list = self
            .directory
            .call(move |s| async move { s.user_sessions(&id).await })
            .await?;
        list.retain(|s| s.expires_at > now);
        list.sort_by_key(|s| std::cmp::Reverse(s.created_at));
        Ok(list)
    }

    /// End one session of the user, by its `id_hash` (the account page): false when the
    /// user has no such session.
    pub async fn end_of_user(&self, user_id: &str, id_hash: &str) -> StoreResult<bool> {
        let mine = self
            .of_user(user_id)
            .await?
            .into_iter()
            .any(|s| s.id_hash == id_hash);
        if !mine {
            return Ok(false);
        }
        self.cache.invalidate(id_hash);
        let key = id_hash.to_string();
        self.directory
            .call(move |s| async move { s.delete_session(&key).await })
            .await?;
        Ok(true)
    }

    /// End every session of a user (suspension, log out everywhere).
    /// The other instances drop them too (the store records a directory change).
    pub async fn end_user(&self, user_id: &str) -> StoreResult<usize> {
        let id = user_id.to_string();
        let now = self.clock.now();
        let ended = self
            .directory
            .call(move |s| async move { s.delete_user_sessions(&id, now).await })
            .await?;
        self.forget_user_cached(user_id);
        Ok(ended.len())
    }

    /// Drop the cached sessions of a user, so the next request of each reads the directory
    /// again (another instance or process ended or changed them; the rows are its job).
    pub fn forget_user_cached(&self, user_id: &str) {
        let user = user_id.to_string();
        if self
            .cache
            .invalidate_entries_if(move |_, v| v.user_id == user)
            .is_err()
        {
            self.cache.invalidate_all();
        }
    }

    /// Drop every cached session (each is read from the directory again on next use).
    pub fn forget_all_cached(&self) {
        self.cache.invalidate_all();
    }

    /// Write queued session activity (background task).
    pub async fn flush_activity(&self) -> StoreResult<usize> {
        let batch = match self.touched.lock() {
            Ok(mut t) => std::mem::take(&mut *t),
            Err(_) => return Ok(0),
        };
        if batch.is_empty() {
            return Ok(0);
        }
        let n = batch.len();
        self.directory.store().touch_sessions(&batch).await?;
        Ok(n)
    }

    /// Delete sessions past their idle or absolute limit (background task).
    pub async fn sweep(&self, idle: Duration) -> StoreResult<u64> {
        let now = self.clock.now();
        self.directory
            .store()
            .delete_expired_sessions(now - idle.as_secs() as i64, now)
            .await
    }
}
