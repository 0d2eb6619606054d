//! The revocation fan-out (docs/design.md): a background task that applies directory changes
//! made by any process (another gateway instance, the admin API, `directory import`) to
//! this instance's caches, so a suspension takes effect on the user's next request here.
//!
//! The `directory_changes` table is the truth; wake-ups only say "look now":
//! - PostgreSQL: `LISTEN partnergate_changes` on a connection of its own (writers
//!   `pg_notify` in the change's transaction, delivered at commit), plus a poll every
//!   [`POLL_LISTENING`] in case a notification is lost. While the listener is down the
//!   watcher polls every [`POLL`] and reconnects it with backoff.
//! - SQLite: a poll of the change head every [`POLL`] (one indexed one-row read).
//!
//! After the caches, the open streams (WebSocket, HTTP/2, event streams) of the users and
//! orgs named are re-checked and those no longer allowed are closed
//! ([`crate::proxy::Streams::revoke`]).
//!
//! Nothing here is on the request path: the proxy only sees caches that got smaller.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus::IntCounter;
use tokio::sync::Notify;

use crate::directory::{changes, Change, ChangeTarget, Directory, Store, StoreResult};
use crate::proxy::Streams;
use crate::session::Sessions;

use super::fanout::Fanout;

/// Poll interval without a push channel (SQLite, or PostgreSQL while LISTEN is down).
pub const POLL: Duration = Duration::from_millis(250);
/// Poll interval while LISTEN is up: only a backstop for a lost notification.
pub const POLL_LISTENING: Duration = Duration::from_secs(1);
/// Changes read per query.
const BATCH: i64 = 1000;
/// Reconnect backoff of the listener.
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Applies directory changes to the caches of one gateway instance.
pub struct Watcher {
    directory: Arc<Directory>,
    sessions: Arc<Sessions>,
    streams: Arc<Streams>,
    applied: IntCounter,
    /// What the changes applied since the last stream re-check touched.
    touched: Vec<ChangeTarget>,
    /// The last change seq applied; `None` until the first successful read (then
    /// everything cached is dropped, since what changed before is unknown).
    last: Option<i64>,
    /// The last sync failed (warned once per outage).
    failing: bool,
    /// Redis pub/sub fan-out, with `[redis]`.
    fanout: Option<Arc<Fanout>>,
}

impl Watcher {
    /// A watcher that starts from the change head as it is now (the caches of a starting
    /// gateway hold nothing older).
    pub async fn start(
        directory: Arc<Directory>,
        sessions: Arc<Sessions>,
        streams: Arc<Streams>,
        applied: IntCounter,
    ) -> Watcher {
        let last = match directory.store().latest_change_seq().await {
            Ok(seq) => Some(seq),
            Err(e) => {
                tracing::warn!("directory changes: cannot read the change head yet: {e}");
                None
            }
        };
        Watcher {
            directory,
            sessions,
            streams,
            applied,
            touched: Vec::new(),
            last,
            failing: false,
            fanout: None,
        }
    }

    /// Also wake on, and announce local changes to, the Redis channel.
    pub fn with_fanout(mut self, fanout: Option<Arc<Fanout>>) -> Self {
        self.fanout = fanout;
        self
    }

    /// The last change seq applied.
    #[cfg(test)]
    pub fn last_seq(&self) -> Option<i64> {
        self.last
    }

    /// Run until the runtime stops: wait for a wake-up or the poll interval, then apply
    /// whatever is new.
    pub async fn run(mut self) {
        let wake = self.directory.watcher_wake();
        let listening = Arc::new(AtomicBool::new(false));
        if let Some(fanout) = &self.fanout {
            tokio::spawn(fanout.clone().subscribe(wake.clone()));
        }
        tokio::spawn(listen(
            self.directory.store().clone(),
            wake.clone(),
            listening.clone(),
        ));
        loop {
            let poll = if listening.load(Ordering::Relaxed) {
                POLL_LISTENING
            } else {
                POLL
            };
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
            }
            self.sync().await;
        }
    }

    /// Read and apply every change after the last applied one, then close the open
    /// streams they revoked. Errors are logged (once per outage) and retried on the next
    /// wake-up; the last seq only moves forward over changes that were applied.
    pub async fn sync(&mut self) -> usize {
        let local = self.directory.take_local_change();
        let result = self.try_sync().await;
        // Also after an error: what was applied before it is re-checked now.
        self.close_revoked_streams().await;
        match result {
            Ok(n) => {
                // Announce what this process wrote; changes that arrived from elsewhere
                // were announced by their writer (no echo between instances).
                if let (true, Some(fanout), Some(last)) = (local && n > 0, &self.fanout, self.last)
                {
                    fanout.publish(last).await;
                }
                if self.failing {
                    tracing::info!("directory changes: reading them again");
                    self.failing = false;
                }
                n
            }
            Err(e) => {
                if !self.failing {
                    tracing::warn!(
                        "directory changes: cannot read them ({e}); cached entries expire by TTL until the directory answers"
                    );
                    self.failing = true;
                }
                0
            }
        }
    }

    async fn try_sync(&mut self) -> StoreResult<usize> {
        let store = self.directory.store().clone();
        let latest = store.latest_change_seq().await?;
        let Some(mut after) = self.last else {
            self.drop_everything("first read of the change head");
            self.last = Some(latest);
            return Ok(0);
        };
        if latest < after {
            // The head went back: the database was restored or replaced.
            self.drop_everything("the change head went back");
            self.last = Some(latest);
            return Ok(0);
        }
        let mut applied = 0;
        while after < latest {
            let batch = store.changes_since(after, BATCH).await?;
            let Some(first) = batch.first() else {
                // Rows up to `latest` were pruned before this instance read them.
                self.drop_everything("changes were pruned before this instance read them");
                after = latest;
                break;
            };
            if first.seq != after + 1 {
                self.drop_everything("changes were pruned before this instance read them");
            }
            for change in &batch {
                self.apply(change);
                after = change.seq;
                self.last = Some(after);
            }
            applied += batch.len();
            if (batch.len() as i64) < BATCH {
                break;
            }
        }
        self.last = Some(after);
        Ok(applied)
    }

    /// Re-check the open streams the applied changes touched; the ones no longer allowed
    /// are closed.
    async fn close_revoked_streams(&mut self) {
        if self.touched.is_empty() {
            return;
        }
        let targets = changes::normalized(std::mem::take(&mut self.touched));
        if self.streams.is_empty() {
            return;
        }
        let started = std::time::Instant::now();
        let closed = self
            .streams
            .revoke(&targets, &self.directory, &self.sessions)
            .await;
        if closed > 0 {
            tracing::info!(
                "directory changes: closed {closed} open stream(s) in {:?}",
                started.elapsed()
            );
        }
    }

    fn apply(&mut self, change: &Change) {
        tracing::debug!("directory change {}: {:?}", change.seq, change.target);
        self.touched.push(change.target.clone());
        match &change.target {
            ChangeTarget::User(id) => {
                self.directory.invalidate_user(id);
                self.sessions.forget_user_cached(id);
            }
            ChangeTarget::Org(id) => self.directory.invalidate_org(id),
            ChangeTarget::All => {
                self.directory.invalidate_all();
                self.sessions.forget_all_cached();
            }
        }
        self.applied.inc();
    }

    fn drop_everything(&mut self, why: &str) {
        tracing::debug!("directory changes: dropping every cached identity and session ({why})");
        self.touched.push(ChangeTarget::All);
        self.directory.invalidate_all();
        self.sessions.forget_all_cached();
    }
}

/// Keep a LISTEN connection open while the store has one; wake the watcher on every
/// announcement, and on every (re)connect (announcements may have been missed meanwhile).
async fn listen(store: Arc<dyn Store>, wake: Arc<Notify>, listening: Arc<AtomicBool>) {
    let mut backoff = BACKOFF_MIN;
    let mut down = false;
    loop {
        let mut listener = match store.change_listener().await {
            Ok(Some(listener)) => listener,
            Ok(None) => return,
            Err(e) => {
                if !down {
                    tracing::warn!(
                        "directory changes: cannot LISTEN ({e}); polling every {POLL:?} and retrying"
                    );
                    down = true;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        if down {
            tracing::info!("directory changes: listening again");
        }
        backoff = BACKOFF_MIN;
        listening.store(true, Ordering::Relaxed);
        wake.notify_one();
        // Ok(true): an announcement. Ok(false): lost and (eagerly) reconnected, so what
        // was announced meanwhile is gone: look anyway.
        let e = loop {
            match listener.recv().await {
                Ok(_) => wake.notify_one(),
                Err(e) => break e,
            }
        };
        tracing::warn!(
            "directory changes: LISTEN connection failed ({e}); polling every {POLL:?} and reconnecting"
        );
        down = true;
        listening.store(false, Ordering::Relaxed);
        wake.notify_one();
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::directory::{self, AuditActor, CacheCounters, OrgStatus, UserStatus};

    const DIRECTORY: &str = r#"
[[role]]
name = "partner-user"
permissions = ["dashboard:view"]

[[org]]
id = "acme"
name = "Acme"
type = "reseller"

[[user]]
email = "bob@acme.example"
org = "acme"
roles = ["partner-user"]
"#;

    fn counter(name: &str) -> IntCounter {
        IntCounter::new(name, "test").expect("counter")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn another_writers_changes_reach_this_instances_cache() {
        let dir = tempfile::TempDir::new().expect("temp dir");
        let url = format!("sqlite://{}/directory.db", dir.path().display());
        let store = directory::connect(&url).await.expect("store");
        let data = toml::from_str(DIRECTORY).expect("directory");
        store.import(&data, 1_000, false).await.expect("import");
        let counters = CacheCounters {
            hit: counter("hit"),
            miss: counter("miss"),
        };
        let cache = Arc::new(Directory::new(
            store.clone(),
            tokio::runtime::Handle::current(),
            100,
            Duration::from_secs(3600),
            counters,
        ));
        let sessions = Arc::new(Sessions::new(cache.clone(), crate::clock::system(), 100));
        let applied = counter("applied");
        let streams = Streams::new(counter("closed"));
        let mut watcher = Watcher::start(cache.clone(), sessions, streams, applied.clone()).await;
        assert_eq!(watcher.sync().await, 0);
        let start = watcher.last_seq().expect("head read");

        let bob = store
            .user_by_email("bob@acme.example")
            .await
            .expect("lookup")
            .expect("bob")
            .id;
        let usable = |c: &Arc<Directory>, id: String| {
            let c = c.clone();
            async move {
                c.identity(&id)
                    .await
                    .expect("identity")
                    .expect("bob")
                    .identity
                    .is_usable()
            }
        };
        assert!(usable(&cache, bob.clone()).await);

        // Another process (a second store on the same file) suspends the org: this cache
        // still has bob as usable until the watcher applies the change.
        let other = directory::connect(&url).await.expect("second store");
        let change = other
            .set_org_status("acme", OrgStatus::Suspended, &AuditActor::system(), 2_000)
            .await
            .expect("suspend");
        assert!(usable(&cache, bob.clone()).await, "cached until applied");
        assert_eq!(watcher.sync().await, 1);
        assert_eq!(watcher.last_seq(), Some(change.change_seq));
        assert!(change.change_seq > start);
        assert!(!usable(&cache, bob.clone()).await);

        other
            .set_org_status("acme", OrgStatus::Active, &AuditActor::system(), 2_001)
            .await
            .expect("reactivate");
        other
            .set_user_status(&bob, UserStatus::Suspended, &AuditActor::system(), 2_002)
            .await
            .expect("suspend bob");
        assert_eq!(watcher.sync().await, 2);
        let identity = cache.identity(&bob).await.expect("identity").expect("bob");
        assert_eq!(identity.identity.status, UserStatus::Suspended);
        assert_eq!(identity.identity.org.status, OrgStatus::Active);
        assert_eq!(applied.get(), 3);

        // Pruned before this instance read them: it drops everything instead.
        other
            .set_user_status(&bob, UserStatus::Active, &AuditActor::system(), 2_003)
            .await
            .expect("reactivate bob");
        // The import (one `all`: it defines roles) and the four status changes.
        assert_eq!(other.prune_changes(i64::MAX).await.expect("prune"), 5);
        assert_eq!(watcher.sync().await, 0);
        assert!(usable(&cache, bob.clone()).await);
        assert_eq!(watcher.last_seq(), Some(change.change_seq + 3));
    }
}
