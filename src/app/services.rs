//! The long-lived parts behind identity: directory, sessions, password hashing, the
//! portal router, and the background tasks that keep them tidy.

use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::directory::{self, CacheCounters, Directory};
use crate::error::StartError;
use crate::metrics::{LoginMetrics, Metrics, USER_WINDOWS};
use crate::password::PasswordHasher;
use crate::portal::{self, PortalState};
use crate::proxy::{Services, Shared};
use crate::session::{LoginService, Sessions};
use crate::usage::{self, UsageCounter};

/// Directory changes are kept this long (seconds): an instance cut off from the database
/// for longer drops its whole cache when it is back instead of replaying them.
const KEEP_CHANGES: i64 = 86_400;

/// Queue of the password-hashing pool: logins waiting beyond this get "try again".
const HASH_QUEUE: usize = 64;

/// Open the directory (migrations included) and build the services on `runtime`.
pub fn build(
    config: &Config,
    metrics: &Metrics,
    runtime: &tokio::runtime::Runtime,
) -> Result<Services, StartError> {
    let url = config.directory.url.clone();
    let store = runtime
        .block_on(async move {
            tokio::time::timeout(Duration::from_secs(30), directory::connect(&url)).await
        })
        .map_err(|_| StartError::Runtime("directory: no answer within 30s".into()))?
        .map_err(|e| {
            StartError::Runtime(format!("directory {}: {e}", redact(&config.directory.url)))
        })?;
    tracing::info!(
        "directory: {} at {}",
        store.kind(),
        redact(&config.directory.url)
    );
    let counters = CacheCounters {
        hit: metrics.directory_cache.with_label_values(&["hit"]),
        miss: metrics.directory_cache.with_label_values(&["miss"]),
    };
    let directory = Arc::new(Directory::new(
        store,
        runtime.handle().clone(),
        config.directory.cache_capacity,
        config.directory.cache_ttl,
        counters,
    ));
    let sessions = Arc::new(Sessions::new(
        directory.clone(),
        crate::clock::system(),
        config.directory.cache_capacity,
    ));
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    let hasher = Arc::new(PasswordHasher::new(threads, HASH_QUEUE));
    let mail = start_mail(config, metrics, &directory, runtime)?;
    let mut login = LoginService::new(sessions.clone(), hasher);
    if let Some(mail) = &mail {
        login = login.with_mail(mail.clone());
    }
    let state = Arc::new(PortalState {
        login,
        metrics: LoginMetrics::new(metrics, config.metrics.top_orgs),
        notifier: Arc::new(crate::lifecycle::LogNotifier),
        mail,
        sso: Arc::new(crate::sso::Sso::new().map_err(StartError::Runtime)?),
        registrations: portal::registration_counter(),
    });
    let tracer = match &config.tracing {
        Some(cfg) => {
            let (tracer, exporter) =
                crate::telemetry::Tracer::new(cfg, metrics.trace_spans_dropped.clone())
                    .map_err(StartError::Runtime)?;
            runtime.spawn(exporter.run());
            tracing::info!(
                "tracing: spans to {}/v1/traces, sample ratio {}",
                cfg.otlp_endpoint,
                cfg.sample_ratio
            );
            Some(Arc::new(tracer))
        }
        None => None,
    };
    Ok(Services {
        tracer,
        directory,
        sessions,
        streams: crate::proxy::Streams::new(metrics.streams_closed.clone()),
        portal: portal::router(state),
        background: runtime.handle().clone(),
        usage: Arc::new(UsageCounter::new(
            usage::DEFAULT_MAX_KEYS,
            metrics.usage_dropped.clone(),
        )),
    })
}

/// With `[mail]`: the outbox worker, started on `runtime`, and what the request path needs
/// to queue mail (the letters and the worker's wake-up). Without it: `None`, and no mail
/// is ever queued. `[mail]` is read at start; changing it needs a restart.
fn start_mail(
    config: &Config,
    metrics: &Metrics,
    directory: &Arc<Directory>,
    runtime: &tokio::runtime::Runtime,
) -> Result<Option<crate::mail::Mail>, StartError> {
    let Some(cfg) = &config.mail else {
        return Ok(None);
    };
    let transport = {
        let _guard = runtime.enter();
        crate::mail::Transport::new(cfg).map_err(|e| StartError::Runtime(format!("mail: {e}")))?
    };
    let outbox = crate::mail::Outbox::new(
        directory.store().clone(),
        transport,
        crate::clock::system(),
        metrics.mail.clone(),
        metrics.mail_outbox_depth.clone(),
    );
    let mail = crate::mail::Mail {
        letters: crate::mail::Letters::new(config.server.public_url.origin()),
        wake: outbox.wake.clone(),
    };
    tracing::info!(host = %cfg.host, port = cfg.port, "mail: sending through SMTP");
    runtime.spawn(outbox.run());
    Ok(Some(mail))
}

/// A database URL without its password, for logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

/// Background upkeep: activity writes, session sweep, directory gauges, JWKS refresh,
/// every minute the expired-grant sweep, and every 5 minutes the inactivity sweep
/// (`lifecycle.inactive_after`) and the pruning of old directory changes and usage rows.
/// How often the audit log's hash chain is checked in the background
/// (`partnergate_audit_chain_valid`); the first check runs at start.
const AUDIT_CHECK_EVERY: Duration = Duration::from_secs(600);

/// Check the audit chain now and then, for the metric and its alert. A read of the whole
/// log in pages: cheap for the sizes a portal's audit log reaches, off the request path.
pub async fn audit_check(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(AUDIT_CHECK_EVERY);
    loop {
        tick.tick().await;
        let gauge = shared
            .metrics
            .audit_chain_valid
            .with_label_values::<&str>(&[]);
        match shared.services.directory.store().audit_verify().await {
            Ok(v) if v.is_intact() => gauge.set(1),
            Ok(v) => {
                tracing::error!(
                    problem = ?v.first_problem,
                    "the audit log's hash chain is broken: run `partnergate audit verify`"
                );
                gauge.set(0);
            }
            Err(e) => tracing::warn!("audit chain check: {e}"),
        }
    }
}

pub async fn upkeep(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(15));
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        n += 1;
        let services = &shared.services;
        if let Err(e) = services.directory.flush_activity().await {
            tracing::warn!("writing last_seen_at: {e}");
        }
        if let Err(e) = services.sessions.flush_activity().await {
            tracing::warn!("writing session activity: {e}");
        }
        let snapshot = shared.snapshot();
        snapshot.rules.limits.evict_idle();
        if n % 4 == 0 {
            match services
                .sessions
                .sweep(snapshot.config.session.idle_timeout)
                .await
            {
                Ok(0) => {}
                Ok(swept) => tracing::debug!("swept {swept} expired session(s)"),
                Err(e) => tracing::warn!("session sweep: {e}"),
            }
            // Expired grants already deny (policy compares the expiry with the clock on
            // every request); the sweep removes them, audited, once a minute.
            let now = services.sessions.clock().now();
            match services.directory.store().sweep_expired_grants(now).await {
                Ok(g) if g.is_empty() => {}
                Ok(g) => {
                    tracing::info!("grant sweep: removed {} expired grant(s)", g.len());
                    services.directory.changed_here();
                }
                Err(e) => tracing::warn!("grant sweep: {e}"),
            }
        }
        if n % 20 == 0 {
            snapshot.bearer.refresh().await;
            let older_than = services.sessions.clock().now() - KEEP_CHANGES;
            if let Err(e) = services.directory.store().prune_changes(older_than).await {
                tracing::warn!("pruning directory changes: {e}");
            }
            let now = services.sessions.clock().now();
            let before_day = directory::day_of(now) - usage::KEEP_DAYS;
            if let Err(e) = services.directory.store().prune_usage(before_day).await {
                tracing::warn!("pruning usage data: {e}");
            }
            let inactive_after = snapshot.config.lifecycle.inactive_after;
            let store = services.directory.store();
            match directory::sweep_inactive(store.as_ref(), now, inactive_after).await {
                Ok(ids) if ids.is_empty() => {}
                Ok(ids) => {
                    tracing::info!(
                        "inactivity sweep: disabled {} user(s) without a login for {}s",
                        ids.len(),
                        inactive_after.as_secs()
                    );
                    services.directory.changed_here();
                }
                Err(e) => tracing::warn!("inactivity sweep: {e}"),
            }
        }
        gauges(&shared).await;
    }
}

/// Add the usage counts to the directory every `lifecycle.usage_flush` (read from the
/// live configuration each time, so a reload changes it).
pub async fn usage_flush(shared: Arc<Shared>) {
    loop {
        let every = shared.snapshot().config.lifecycle.usage_flush;
        tokio::time::sleep(every).await;
        flush_usage(&shared).await;
    }
}

/// One usage flush (also run at graceful shutdown). A failed write keeps the counts in
/// memory for the next one.
pub async fn flush_usage(shared: &Shared) {
    let services = &shared.services;
    match usage::flush(&services.usage, services.directory.store().as_ref()).await {
        Ok(done) if done.rows == 0 => {}
        Ok(done) => tracing::debug!(
            "usage: added {} request(s) in {} row(s)",
            done.requests,
            done.rows
        ),
        Err(e) => tracing::warn!(
            "usage: writing {} key(s) failed, kept for the next flush: {e}",
            services.usage.keys()
        ),
    }
}

/// Refresh the directory gauges (see docs/reference.md, Metrics).
pub async fn gauges(shared: &Shared) {
    let now = shared.services.sessions.clock().now();
    let windows: Vec<i64> = USER_WINDOWS.iter().map(|w| w.1).collect();
    let stats = match shared.services.directory.store().stats(now, &windows).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("directory stats: {e}");
            return;
        }
    };
    let m = &shared.metrics;
    m.sessions_active.set(stats.sessions_active);
    for (status, count) in &stats.users_by_status {
        m.users.with_label_values(&[status.as_str()]).set(*count);
    }
    for (status, count) in &stats.orgs_by_status {
        m.orgs.with_label_values(&[status.as_str()]).set(*count);
    }
    for (window, count) in &stats.users_active {
        if let Some((label, _)) = USER_WINDOWS.iter().find(|w| w.1 == *window) {
            m.users_active.with_label_values(&[label]).set(*count);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redacts_passwords_in_urls() {
        assert_eq!(
            redact("postgres://pg:secret@db:5432/x"),
            "postgres://pg:***@db:5432/x"
        );
        assert_eq!(redact("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
    }
}
