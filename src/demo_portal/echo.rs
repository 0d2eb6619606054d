//! `/debug/headers`, `/debug/echo/…` and `/debug/slow`: what the portal received, as JSON
//! (with the outcome of the assertion check), and a deliberately slow answer for upstream
//! timeout tests.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{OriginalUri, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::TryStreamExt as _;
use http::{HeaderMap, Method, StatusCode};
use serde::{Deserialize, Serialize};

use super::assertion::AssertionReport;
use super::{header_text, PortalState};

/// Longest `/debug/slow` sleep, so a typo cannot park a connection for hours.
const SLOW_CAP_MS: u64 = 120_000;

/// What crossed the wire. `path` and `query` are the raw request target, before any
/// routing or decoding, so tests see exactly what the gateway forwarded.
#[derive(Debug, Serialize)]
struct EchoReport {
    method: String,
    path: String,
    query: Option<String>,
    headers: BTreeMap<String, String>,
    body_bytes: u64,
    /// Never refused here, so tests can see why an assertion failed.
    assertion: AssertionReport,
}

pub(super) async fn echo(
    State(state): State<PortalState>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body_bytes = match count_body(body).await {
        Ok(count) => count,
        Err(error) => {
            tracing::debug!(%error, "demo portal could not read a request body");
            return (StatusCode::BAD_REQUEST, "could not read the request body\n").into_response();
        }
    };
    Json(EchoReport {
        method: method.as_str().to_owned(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        headers: lower_case_headers(&headers),
        body_bytes,
        assertion: state
            .check_assertion(&headers)
            .await
            .unwrap_or_else(AssertionReport::not_checked),
    })
    .into_response()
}

/// Counts the body as it streams, so large uploads need neither memory nor a size limit.
async fn count_body(body: Body) -> Result<u64, axum::Error> {
    body.into_data_stream()
        .try_fold(0u64, |count, chunk| async move {
            Ok(count.saturating_add(chunk.len() as u64))
        })
        .await
}

/// `HeaderName`s are already lower case; repeated headers are joined with ", ".
fn lower_case_headers(headers: &HeaderMap) -> BTreeMap<String, String> {
    headers
        .keys()
        .filter_map(|name| Some((name.as_str().to_owned(), header_text(headers, name)?)))
        .collect()
}

#[derive(Debug, Deserialize)]
pub(super) struct SlowParams {
    ms: Option<u64>,
}

pub(super) async fn slow(Query(params): Query<SlowParams>) -> &'static str {
    tokio::time::sleep(slow_duration(params.ms)).await;
    "slow done"
}

fn slow_duration(ms: Option<u64>) -> Duration {
    Duration::from_millis(ms.unwrap_or(0).min(SLOW_CAP_MS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_duration_is_capped() {
        let cases = [
            (None, 0),
            (Some(0), 0),
            (Some(250), 250),
            (Some(SLOW_CAP_MS), SLOW_CAP_MS),
            (Some(SLOW_CAP_MS + 1), SLOW_CAP_MS),
            (Some(u64::MAX), SLOW_CAP_MS),
        ];
        for (ms, expected) in cases {
            assert_eq!(slow_duration(ms), Duration::from_millis(expected), "{ms:?}");
        }
    }
}
