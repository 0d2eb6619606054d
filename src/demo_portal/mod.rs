//! A stand-in "legacy partner portal" (`partnergate demo-portal`): the upstream used by the
//! demo and by the integration tests.
//!
//! By default it trusts whatever identity headers arrive — the gateway in front of it is
//! what makes them trustworthy — and shows or echoes them, so a test can assert exactly
//! what crossed the wire. Given a JWKS URL ([`PortalOptions::jwks_url`]) it trusts only
//! signed identity: its pages refuse (403) a request without a valid `X-Partner-Assertion`,
//! while `/debug/*` keep answering and report the verification. Each caller lands on the
//! dashboard of their role. Request data is never unwrapped: odd paths, bodies and
//! non-UTF-8 header values are shown lossily or answered with a plain 400/404.

mod assertion;
mod dashboards;
mod echo;
mod events;
mod identity;
mod pages;
mod websocket;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::routing::{any, get};
use axum::Router;
use http::header::AsHeaderName;
use http::{HeaderMap, StatusCode};
use tokio::net::TcpListener;

use assertion::{AssertionReport, AssertionVerifier};

/// How the portal treats identity (the `demo-portal` command's options).
#[derive(Debug, Clone, Default)]
pub struct PortalOptions {
    /// Verify `X-Partner-Assertion` against the JWKS at this URL; `None` trusts the
    /// identity headers as they arrive.
    pub jwks_url: Option<reqwest::Url>,
    /// The `aud` an assertion must carry; `None` accepts any.
    pub audience: Option<String>,
}

/// What the handlers share.
#[derive(Clone, Default)]
struct PortalState {
    verifier: Option<Arc<AssertionVerifier>>,
}

impl PortalState {
    /// The assertion check for this request; `None` when the portal does not verify.
    async fn check_assertion(&self, headers: &HeaderMap) -> Option<AssertionReport> {
        match &self.verifier {
            Some(verifier) => Some(verifier.check(headers).await),
            None => None,
        }
    }
}

/// Build the demo portal's router, trusting identity headers as they arrive.
pub fn router() -> Router {
    routes(PortalState::default())
}

fn routes(state: PortalState) -> Router {
    Router::new()
        .route("/", get(pages::dashboard))
        .route("/dashboard", get(pages::dashboard))
        .route("/clients/{id}", any(pages::client_account))
        .route("/clients/{id}/", any(pages::client_account))
        .route("/clients/{id}/{*rest}", any(pages::client_account))
        .route("/deals", get(pages::section))
        .route("/deals/{*rest}", get(pages::section))
        .route("/referrals", get(pages::section))
        .route("/referrals/{*rest}", get(pages::section))
        .route("/reports", get(pages::section))
        .route("/reports/{*rest}", get(pages::section))
        .route("/debug/headers", any(echo::echo))
        .route("/debug/echo/", any(echo::echo))
        .route("/debug/echo/{*rest}", any(echo::echo))
        .route("/debug/slow", get(echo::slow))
        .route("/healthz", get(healthz))
        .route("/ws", get(websocket::upgrade))
        .route("/events", get(events::events))
        .fallback(not_found)
        .with_state(state)
}

/// Serve on an already-bound listener until `shutdown` resolves, trusting identity headers.
pub async fn serve(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, PortalOptions::default(), shutdown).await
}

/// Serve with `options`; with a JWKS URL, the JWKS is fetched before the first request
/// is accepted (a failure is logged and retried on demand) and re-read periodically.
pub async fn serve_with(
    listener: TcpListener,
    options: PortalOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let state = start_verifier(options).await;
    axum::serve(listener, routes(state))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn start_verifier(options: PortalOptions) -> PortalState {
    let Some(url) = options.jwks_url else {
        return PortalState::default();
    };
    tracing::info!(%url, audience = ?options.audience, "demo portal verifies X-Partner-Assertion");
    let verifier = Arc::new(AssertionVerifier::new(url, options.audience));
    verifier.refresh(Duration::ZERO).await;
    tokio::spawn(assertion::refresh_periodically(Arc::downgrade(&verifier)));
    PortalState {
        verifier: Some(verifier),
    }
}

/// Bind `addr` and serve with `options` until Ctrl-C / SIGTERM.
pub async fn run(addr: SocketAddr, options: PortalOptions) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot bind the demo portal to {addr}"))?;
    let local = listener.local_addr().unwrap_or(addr);
    tracing::info!(addr = %local, "demo portal listening");
    serve_with(listener, options, shutdown_signal())
        .await
        .context("demo portal server failed")?;
    tracing::info!("demo portal stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = terminate_signal() => {}
    }
}

#[cfg(unix)]
async fn terminate_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut sigterm) => {
            sigterm.recv().await;
        }
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM");
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(not(unix))]
async fn terminate_signal() {
    std::future::pending::<()>().await;
}

async fn healthz() -> &'static str {
    "ok"
}

async fn not_found() -> (StatusCode, &'static str) {
    (StatusCode::NOT_FOUND, "not found\n")
}

/// Every value of header `name`, lossily decoded and joined with ", " as a proxy would
/// fold them; `None` when the header is absent.
fn header_text<K: AsHeaderName>(headers: &HeaderMap, name: K) -> Option<String> {
    let mut values = headers
        .get_all(name)
        .iter()
        .map(|value| String::from_utf8_lossy(value.as_bytes()));
    let first = values.next()?.into_owned();
    Some(values.fold(first, |mut joined, value| {
        joined.push_str(", ");
        joined.push_str(&value);
        joined
    }))
}
