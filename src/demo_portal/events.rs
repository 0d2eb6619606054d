//! `GET /events`: an endless event stream (`data: tick N`, one event every `every_ms`,
//! default 1000), for tests of long-lived responses through the gateway. `?plain=true`
//! sends the same bytes as `text/plain`, an ordinary streamed response.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Query;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub(super) struct EventParams {
    every_ms: Option<u64>,
    plain: Option<bool>,
}

pub(super) async fn events(Query(params): Query<EventParams>) -> Response {
    let every = Duration::from_millis(params.every_ms.unwrap_or(1000).clamp(10, 60_000));
    let content_type = if params.plain.unwrap_or(false) {
        "text/plain; charset=utf-8"
    } else {
        "text/event-stream"
    };
    let ticks = futures::stream::unfold(0u64, move |n| async move {
        if n > 0 {
            tokio::time::sleep(every).await;
        }
        let event = Bytes::from(format!("data: tick {n}\n\n"));
        Some((Ok::<_, Infallible>(event), n + 1))
    });
    (
        [(CONTENT_TYPE, content_type), (CACHE_CONTROL, "no-store")],
        Body::from_stream(ticks),
    )
        .into_response()
}
