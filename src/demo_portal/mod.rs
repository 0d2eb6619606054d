//! A stand-in "legacy partner portal" (CONTRACT §1 `demo-portal`): the upstream used by the
//! demo and by the integration tests.
//!
//! It trusts whatever identity headers arrive — the gateway in front of it is what makes
//! them trustworthy — and shows or echoes them, so a test can assert exactly what crossed
//! the wire. Request data is never unwrapped: odd paths, bodies and non-UTF-8 header values
//! are shown lossily or answered with a plain 400/404.

mod echo;
mod pages;
mod websocket;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context as _;
use axum::routing::{any, get};
use axum::Router;
use http::header::AsHeaderName;
use http::{HeaderMap, StatusCode};
use tokio::net::TcpListener;

/// Build the demo portal's router.
pub fn router() -> Router {
    Router::new()
        .route("/", get(pages::dashboard))
        .route("/dashboard", get(pages::dashboard))
        .route("/clients/{id}", get(pages::client_account))
        .route("/clients/{id}/", get(pages::client_account))
        .route("/clients/{id}/{*rest}", get(pages::client_account))
        .route("/debug/headers", any(echo::echo))
        .route("/debug/echo/", any(echo::echo))
        .route("/debug/echo/{*rest}", any(echo::echo))
        .route("/debug/slow", get(echo::slow))
        .route("/healthz", get(healthz))
        .route("/ws", get(websocket::upgrade))
        .fallback(not_found)
}

/// Serve on an already-bound listener until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router())
        .with_graceful_shutdown(shutdown)
        .await
}

/// Bind `addr` and serve until Ctrl-C / SIGTERM.
pub async fn run(addr: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot bind the demo portal to {addr}"))?;
    let local = listener.local_addr().unwrap_or(addr);
    tracing::info!(addr = %local, "demo portal listening");
    serve(listener, shutdown_signal())
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
