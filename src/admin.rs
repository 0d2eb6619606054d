//! The admin listener (`server.admin_listen`, never the public one): `/metrics`,
//! `/healthz`, `/readyz` and `POST /reload`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::config::Problem;
use crate::proxy::Shared;

/// What `POST /reload` asks for: re-read the configuration and swap it in whole, or keep
/// the old one and name every problem.
pub trait Reload: Send + Sync + 'static {
    fn reload(&self) -> futures::future::BoxFuture<'_, Result<(), Vec<Problem>>>;
}

#[derive(Clone)]
struct AdminState {
    shared: Arc<Shared>,
    reloader: Arc<dyn Reload>,
}

pub fn router(shared: Arc<Shared>, reloader: Arc<dyn Reload>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/reload", post(reload))
        .with_state(AdminState { shared, reloader })
}

/// Serve the admin API until the process exits.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    reloader: Arc<dyn Reload>,
) {
    if let Err(e) = axum::serve(listener, router(shared, reloader)).await {
        tracing::error!("admin listener stopped: {e}");
    }
}

async fn metrics(State(s): State<AdminState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.shared.metrics.encode(),
    )
        .into_response()
}

async fn healthz() -> &'static str {
    "ok"
}

/// Ready when the configuration is loaded, the process is not draining, and every
/// upstream has a healthy address.
async fn readyz(State(s): State<AdminState>) -> Response {
    let snapshot = s.shared.snapshot();
    let mut not_ready: Vec<String> = Vec::new();
    if s.shared.is_draining() {
        not_ready.push("shutting down".into());
    }
    let ping = s.shared.services.directory.store().ping();
    match tokio::time::timeout(std::time::Duration::from_secs(2), ping).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => not_ready.push(format!("directory: {e}")),
        Err(_) => not_ready.push("directory: no answer within 2s".into()),
    }
    let mut names: Vec<&String> = snapshot.upstreams.keys().collect();
    names.sort();
    for name in names {
        if snapshot
            .upstreams
            .get(name)
            .is_some_and(|pool| !pool.any_healthy())
        {
            not_ready.push(format!("upstream {name}: no healthy address"));
        }
    }
    if not_ready.is_empty() {
        (StatusCode::OK, Json(json!({ "ready": true }))).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "ready": false, "not_ready": not_ready })),
        )
            .into_response()
    }
}

async fn reload(State(s): State<AdminState>) -> Response {
    match s.reloader.reload().await {
        Ok(()) => (StatusCode::OK, Json(json!({ "reloaded": true }))).into_response(),
        Err(problems) => {
            let errors: Vec<String> = problems.iter().map(ToString::to_string).collect();
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({ "reloaded": false, "errors": errors })),
            )
                .into_response()
        }
    }
}
