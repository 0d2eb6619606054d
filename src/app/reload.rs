//! Hot reload (SIGHUP, `POST /reload`): build and validate a whole new snapshot, then
//! swap it in; requests in flight keep the snapshot they started with.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::Mutex;

use crate::config::Problem;
use crate::proxy::{upstream, Shared, Snapshot};

pub struct Reloader {
    path: PathBuf,
    shared: Arc<Shared>,
    runtime: tokio::runtime::Handle,
    /// One reload at a time.
    lock: Mutex<()>,
}

impl crate::admin::Reload for Reloader {
    fn reload(&self) -> futures::future::BoxFuture<'_, Result<(), Vec<Problem>>> {
        Box::pin(Reloader::reload(self))
    }
}

impl Reloader {
    pub fn new(path: PathBuf, shared: Arc<Shared>, runtime: tokio::runtime::Handle) -> Self {
        Reloader {
            path,
            shared,
            runtime,
            lock: Mutex::new(()),
        }
    }

    /// Reload; on any problem the old configuration keeps serving.
    pub async fn reload(&self) -> Result<(), Vec<Problem>> {
        let _one_at_a_time = self.lock.lock().await;
        let path = self.path.clone();
        let old = self.shared.snapshot();
        let metrics = self.shared.metrics.clone();
        let built = tokio::task::spawn_blocking(move || build(&path, &old, &metrics)).await;
        let result = match built {
            Ok(r) => r,
            Err(e) => Err(vec![Problem {
                file: self.path.clone(),
                key: "(reload)".into(),
                reason: format!("reload task failed: {e}"),
            }]),
        };
        let outcome = match result {
            Ok(snapshot) => {
                // Keys from jwks_url are fetched before the new issuers take traffic.
                snapshot.bearer.refresh().await;
                self.start_health_checks(&snapshot);
                self.shared.swap(snapshot);
                tracing::info!("configuration reloaded from {}", self.path.display());
                Ok(())
            }
            Err(problems) => {
                for p in &problems {
                    tracing::error!("reload rejected, old configuration kept: {p}");
                }
                Err(problems)
            }
        };
        let label = if outcome.is_ok() { "success" } else { "error" };
        self.shared
            .metrics
            .config_reloads
            .with_label_values(&[label])
            .inc();
        outcome
    }

    fn start_health_checks(&self, new: &Snapshot) {
        let old = self.shared.snapshot();
        for (name, pool) in &new.upstreams {
            let reused = old
                .upstreams
                .get(name)
                .is_some_and(|o| Arc::ptr_eq(o, pool));
            if !reused {
                self.runtime.spawn(upstream::health_loop(
                    Arc::downgrade(pool),
                    self.shared.metrics.clone(),
                ));
            }
        }
    }
}

fn build(
    path: &std::path::Path,
    old: &Snapshot,
    metrics: &crate::metrics::Metrics,
) -> Result<Snapshot, Vec<Problem>> {
    let loaded = crate::config::Config::load(path).map_err(|e| e.0)?;
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    let new = Arc::new(loaded.config);
    let before = &old.config.server;
    if new.server.listen != before.listen
        || new.server.tls.as_ref().map(|t| t.listen) != before.tls.as_ref().map(|t| t.listen)
        || new.server.admin_listen != before.admin_listen
    {
        tracing::warn!("listener addresses changed: they take effect after a restart");
    }
    if new.directory.url != old.config.directory.url
        || new.directory.cache_capacity != old.config.directory.cache_capacity
        || new.directory.cache_ttl != old.config.directory.cache_ttl
    {
        tracing::warn!("[directory] changed: it takes effect after a restart");
    }
    if new.redis.as_ref().map(|r| (&r.url, &r.key_prefix))
        != old.config.redis.as_ref().map(|r| (&r.url, &r.key_prefix))
    {
        tracing::warn!(
            "[redis] url or key_prefix changed: it takes effect after a restart (limits stay as they were shared or local until then)"
        );
    }
    Snapshot::build(new, Some(old), metrics)
}
