//! `partnergate run`: the pingora server, the background runtime and graceful stop.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::listeners::tls::TlsSettings;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use tokio::signal::unix::{signal, SignalKind};

use crate::accesslog::{self, AccessLogTarget};
use crate::config::{AccessLogPath, Config};
use crate::error::StartError;
use crate::metrics::Metrics;
use crate::proxy::{upstream, Gateway, Shared, SniCapture};

use super::{init_tracing, validate, Reloader};

/// Lines the access log may queue before it counts drops.
const ACCESS_LOG_QUEUE: usize = 65_536;

/// How long the last usage flush may take at shutdown.
const USAGE_FLUSH_AT_EXIT: Duration = Duration::from_secs(5);

pub fn run(path: &Path) -> Result<(), StartError> {
    init_tracing();
    let validated = validate(path)?;
    for w in &validated.warnings {
        tracing::warn!("{w}");
    }
    let config = validated.snapshot.config.clone();
    preflight_bind(&config)?;
    let admin = std::net::TcpListener::bind(config.server.admin_listen).map_err(|source| {
        StartError::Bind {
            addr: config.server.admin_listen,
            source,
        }
    })?;
    admin
        .set_nonblocking(true)
        .map_err(|e| StartError::Runtime(e.to_string()))?;

    let metrics = Arc::new(Metrics::new());
    let target = match &config.access_log.path {
        AccessLogPath::Stdout => AccessLogTarget::Stdout,
        AccessLogPath::File(p) => AccessLogTarget::File(p.clone()),
    };
    let (access_log, writer) =
        accesslog::channel(target, ACCESS_LOG_QUEUE, metrics.access_log_dropped.clone());
    let background = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("partnergate-bg")
        .enable_all()
        .build()
        .map_err(|e| StartError::Runtime(format!("background runtime: {e}")))?;
    let services = super::services::build(&config, &metrics, &background)?;
    background.block_on(validated.snapshot.bearer.refresh());
    let snapshot = match &config.redis {
        Some(redis) => {
            tracing::info!(
                "rate limits shared through Redis at {}",
                super::services::redact(&redis.url)
            );
            let store = crate::ratelimit::SharedStore::new(redis, background.handle());
            // Give the connection a moment, so limits that fail closed (login) do not
            // refuse the first requests of a healthy start.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
            while !store.is_connected() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            if !store.is_connected() {
                tracing::warn!("Redis not reachable yet: each limit applies its on_redis_error fallback until it is");
            }
            validated.snapshot.rebind(&metrics, Some(store))
        }
        None => validated.snapshot.rebind(&metrics, None),
    };
    let shared = Arc::new(Shared::new(
        snapshot,
        metrics.clone(),
        access_log.clone(),
        services,
    ));
    background.spawn(super::services::upkeep(shared.clone()));
    background.spawn(super::services::usage_flush(shared.clone()));
    background.spawn(super::services::audit_check(shared.clone()));
    let watcher = background.block_on(super::watcher::Watcher::start(
        shared.services.directory.clone(),
        shared.services.sessions.clone(),
        shared.services.streams.clone(),
        metrics.directory_changes_applied.clone(),
    ));
    let fanout = (shared.snapshot().config.redis.as_ref())
        .and_then(|r| super::fanout::Fanout::new(&r.url, &r.key_prefix));
    background.spawn(watcher.with_fanout(fanout).run());
    background.block_on(super::services::gauges(&shared));
    let reloader = Arc::new(Reloader::new(
        path.to_path_buf(),
        shared.clone(),
        background.handle().clone(),
    ));
    background.spawn(async move {
        if let Err(e) = writer.run().await {
            tracing::error!("access log writer stopped: {e}");
        }
    });
    for pool in shared.snapshot().upstreams.values() {
        background.spawn(upstream::health_loop(Arc::downgrade(pool), metrics.clone()));
    }
    let admin = {
        let _in_runtime = background.enter();
        tokio::net::TcpListener::from_std(admin).map_err(|e| StartError::Runtime(e.to_string()))?
    };
    background.spawn(crate::admin::serve(admin, shared.clone(), reloader.clone()));
    if let Some(every) = config.server.watch_config {
        background.spawn(watch_config(path.to_path_buf(), reloader.clone(), every));
    }
    background.spawn(operator_signals(shared.clone(), reloader));

    let mut server = Server::new_with_opt_and_conf(None, server_conf(&config));
    server.bootstrap();
    let mut service = crate::wire::proxy_service(
        &server.configuration,
        Gateway::new(shared.clone()),
        "partnergate",
        config.server.request_header_timeout,
    );
    if let Some(addr) = config.server.listen {
        service.add_tcp(&addr.to_string());
    }
    if let (Some(tls), Some(cert)) = (&config.server.tls, validated.server_cert) {
        let settings = tls_settings(cert)?;
        service.add_tls_with_settings(&tls.listen.to_string(), None, settings);
    }
    server.add_service(service);
    log_listening(&config);

    let (stop_tx, stop_rx) = std::sync::mpsc::channel();
    let drain_shared = shared.clone();
    let grace = config.server.shutdown_grace;
    let handle = background.handle().clone();
    std::thread::Builder::new()
        .name("partnergate-drain".into())
        .spawn(move || drain_then_exit(stop_rx, drain_shared, grace, handle))
        .map_err(|e| StartError::Runtime(e.to_string()))?;
    server.run(RunArgs {
        shutdown_signal: Box::new(StopSignals { shared, stop_tx }),
    });
    Ok(())
}

fn server_conf(config: &Config) -> ServerConf {
    ServerConf {
        threads: config.server.threads,
        work_stealing: true,
        // Backstop only: the drain thread exits as soon as in-flight requests are done.
        grace_period_seconds: Some(config.server.shutdown_grace.as_secs() + 2),
        graceful_shutdown_timeout_seconds: Some(1),
        upstream_keepalive_pool_size: 1024,
        ..ServerConf::default()
    }
}

/// TLS 1.2/1.3 with the validated certificate, ALPN h2 + http/1.1, SNI remembered.
fn tls_settings(cert: Arc<rustls::sign::CertifiedKey>) -> Result<TlsSettings, StartError> {
    let mut settings = TlsSettings::with_callbacks(Box::new(SniCapture))
        .map_err(|e| StartError::Runtime(format!("tls settings: {e}")))?;
    settings.set_cert_resolver(Arc::new(crate::tls::StaticCertResolver(cert)));
    settings.enable_h2();
    Ok(settings)
}

/// pingora binds inside its own threads and exits on failure without naming the
/// address; try each public address first so the operator gets a clear message.
fn preflight_bind(config: &Config) -> Result<(), StartError> {
    let addrs = [
        config.server.listen,
        config.server.tls.as_ref().map(|t| t.listen),
    ];
    for addr in addrs.into_iter().flatten() {
        std::net::TcpListener::bind(addr).map_err(|source| StartError::Bind { addr, source })?;
    }
    Ok(())
}

fn log_listening(config: &Config) {
    if let Some(addr) = config.server.listen {
        tracing::info!("listening on http://{addr}");
    }
    if let Some(tls) = &config.server.tls {
        tracing::info!("listening on https://{} (HTTP/2 and HTTP/1.1)", tls.listen);
    }
    tracing::info!(
        "admin listener on http://{} (/metrics /healthz /readyz /reload)",
        config.server.admin_listen
    );
}

/// SIGTERM and SIGINT both stop gracefully (pingora's default makes SIGINT a fast stop).
struct StopSignals {
    shared: Arc<Shared>,
    stop_tx: std::sync::mpsc::Sender<Instant>,
}

#[async_trait]
impl ShutdownSignalWatch for StopSignals {
    async fn recv(&self) -> ShutdownSignal {
        let (term, int) = match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(t), Ok(i)) => (t, i),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!("cannot watch stop signals: {e}");
                std::future::pending::<()>().await;
                return ShutdownSignal::FastShutdown;
            }
        };
        let (mut term, mut int) = (term, int);
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(
            "{name}: draining {} in-flight request(s)",
            self.shared.inflight()
        );
        self.shared.set_draining();
        let _ = self.stop_tx.send(Instant::now());
        ShutdownSignal::GracefulTerminate
    }
}

/// After a stop signal pingora closes the listeners; wait until the requests in flight
/// are done (or the grace period is over), flush the usage counts and the access log, and
/// exit.
fn drain_then_exit(
    stop: std::sync::mpsc::Receiver<Instant>,
    shared: Arc<Shared>,
    grace: Duration,
    runtime: tokio::runtime::Handle,
) {
    let Ok(started) = stop.recv() else { return };
    // Let pingora stop accepting and finish reading heads already on the wire.
    std::thread::sleep(Duration::from_millis(100));
    while shared.inflight() > 0 && started.elapsed() < grace {
        std::thread::sleep(Duration::from_millis(20));
    }
    let left = shared.inflight();
    if left > 0 {
        tracing::warn!("shutdown grace ({grace:?}) over with {left} request(s) still in flight");
    }
    let usage = shared.clone();
    let flushed = runtime.block_on(async move {
        tokio::time::timeout(USAGE_FLUSH_AT_EXIT, super::services::flush_usage(&usage)).await
    });
    let unwritten = shared.services.usage.keys();
    if flushed.is_err() {
        tracing::warn!("usage: the last flush did not finish within {USAGE_FLUSH_AT_EXIT:?}; its counts may be lost");
    } else if unwritten > 0 {
        tracing::warn!(
            "usage: {unwritten} key(s) of usage counts could not be written before exit"
        );
    }
    let log = shared.access_log.clone();
    let _ = runtime
        .block_on(async move { tokio::time::timeout(Duration::from_secs(2), log.flush()).await });
    tracing::info!("stopped");
    std::process::exit(0);
}

/// `server.watch_config`: reload when the file's content changed (its SHA-256, read
/// through symlinks, so a Kubernetes ConfigMap's swap of `..data` counts). A change that
/// does not validate is reported, counted as a failed reload, and not retried until the
/// file changes again.
async fn watch_config(path: std::path::PathBuf, reloader: Arc<Reloader>, every: Duration) {
    use sha2::{Digest, Sha256};
    let digest = |p: &std::path::Path| std::fs::read(p).ok().map(|b| Sha256::digest(b).to_vec());
    let mut last = digest(&path);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = digest(&path);
        if now.is_some() && now != last {
            tracing::info!("{} changed: reloading", path.display());
            let _ = reloader.reload().await;
            last = now;
        }
    }
}

/// SIGHUP reloads the configuration; SIGUSR1 reopens the access log file.
async fn operator_signals(shared: Arc<Shared>, reloader: Arc<Reloader>) {
    let (Ok(mut hup), Ok(mut usr1)) = (
        signal(SignalKind::hangup()),
        signal(SignalKind::user_defined1()),
    ) else {
        tracing::error!("cannot watch SIGHUP/SIGUSR1");
        return;
    };
    loop {
        tokio::select! {
            _ = hup.recv() => {
                let _ = reloader.reload().await;
            }
            _ = usr1.recv() => {
                tracing::info!("SIGUSR1: reopening the access log");
                shared.access_log.reopen();
            }
        }
    }
}
