//! The OTLP/HTTP exporter: batches of spans as an `ExportTraceServiceRequest` in the
//! protobuf JSON mapping (`Content-Type: application/json`), POSTed to
//! `{otlp_endpoint}/v1/traces`. A batch that cannot be delivered is dropped after one
//! retry: traces are best effort, and the request path never waits for them.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::config::TracingConfig;

use super::{hex, Span};

const BATCH: usize = 512;
const LINGER: Duration = Duration::from_secs(1);

pub struct Exporter {
    client: reqwest::Client,
    url: String,
    service_name: String,
    queue: mpsc::Receiver<Span>,
}

impl Exporter {
    pub fn new(config: &TracingConfig, queue: mpsc::Receiver<Span>) -> Result<Exporter, String> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("partnergate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("tracing: cannot build the HTTP client: {e}"))?;
        Ok(Exporter {
            client,
            url: format!("{}/v1/traces", config.otlp_endpoint),
            service_name: config.service_name.clone(),
            queue,
        })
    }

    /// Export until every sender is gone.
    pub async fn run(mut self) {
        let mut failing = false;
        while let Some(first) = self.queue.recv().await {
            let mut batch = vec![first];
            let deadline = tokio::time::Instant::now() + LINGER;
            while batch.len() < BATCH {
                match tokio::time::timeout_at(deadline, self.queue.recv()).await {
                    Ok(Some(span)) => batch.push(span),
                    Ok(None) | Err(_) => break,
                }
            }
            let body = encode(&self.service_name, &batch).to_string();
            let mut sent = false;
            for _ in 0..2 {
                match self.post(&body).await {
                    Ok(()) => {
                        sent = true;
                        break;
                    }
                    Err(e) if !failing => {
                        tracing::warn!("tracing: exporting {} span(s) failed: {e}", batch.len());
                        failing = true;
                    }
                    Err(_) => {}
                }
            }
            if sent && failing {
                tracing::info!("tracing: exporting works again");
                failing = false;
            }
        }
    }

    async fn post(&self, body: &str) -> Result<(), String> {
        let response = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {}", response.status()))
        }
    }
}

/// An `ExportTraceServiceRequest` in the OTLP JSON encoding (ids in hex, times as
/// strings of nanoseconds, enums as numbers).
pub fn encode(service_name: &str, spans: &[Span]) -> Value {
    let spans: Vec<Value> = spans
        .iter()
        .map(|s| {
            let attributes: Vec<Value> = s
                .attributes
                .iter()
                .map(|(k, v)| json!({ "key": k, "value": { "stringValue": v } }))
                .collect();
            let mut span = json!({
                "traceId": hex(&s.trace_id),
                "spanId": hex(&s.span_id),
                "name": s.name,
                "kind": s.kind as u8,
                "startTimeUnixNano": s.start_ns.to_string(),
                "endTimeUnixNano": s.end_ns.to_string(),
                "attributes": attributes,
                "status": { "code": if s.error { 2 } else { 1 } },
            });
            if let Some(parent) = s.parent {
                span["parentSpanId"] = json!(hex(&parent));
            }
            span
        })
        .collect();
    json!({
        "resourceSpans": [{
            "resource": { "attributes": [
                { "key": "service.name", "value": { "stringValue": service_name } },
                { "key": "service.version", "value": { "stringValue": env!("CARGO_PKG_VERSION") } },
            ] },
            "scopeSpans": [{
                "scope": { "name": "partnergate", "version": env!("CARGO_PKG_VERSION") },
                "spans": spans,
            }],
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::super::Kind;
    use super::*;

    #[test]
    fn the_json_encoding() {
        let span = Span {
            trace_id: [0xab; 16],
            span_id: [1; 8],
            parent: Some([2; 8]),
            name: "GET deals".into(),
            kind: Kind::Server,
            start_ns: 1_700_000_000_000_000_000,
            end_ns: 1_700_000_000_001_000_000,
            attributes: vec![("http.route", "deals".into())],
            error: false,
        };
        let v = encode("partnergate", &[span]);
        let s = &v["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(s["traceId"], "abababababababababababababababab");
        assert_eq!(s["parentSpanId"], "0202020202020202");
        assert_eq!(s["kind"], 2);
        assert_eq!(s["startTimeUnixNano"], "1700000000000000000");
        assert_eq!(s["attributes"][0]["value"]["stringValue"], "deals");
        assert_eq!(
            v["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"],
            "partnergate"
        );
    }
}
