//! OpenTelemetry traces end to end: the gateway exports its spans over OTLP/HTTP (JSON)
//! to a receiver on 127.0.0.1 (`tests/otlp_sink.py`, which checks the OTLP JSON shape),
//! with the caller's trace context continued, the admission stages as children of the
//! request's server span, the upstream call as a client span, `traceparent` passed to the
//! upstream, and no cookie or token in any attribute.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;
use crate::policy::logged_in;

struct Sink {
    port: u16,
    file: std::path::PathBuf,
    _dir: tempfile::TempDir,
    child: Child,
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn sink() -> Sink {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("spans.jsonl");
    let port = free_port();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/otlp_sink.py");
    let child = Command::new("python3")
        .arg(script)
        .args(["--port", &port.to_string(), "--file"])
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the OTLP receiver");
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "OTLP receiver did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Sink {
        port,
        file,
        _dir: dir,
        child,
    }
}

impl Sink {
    /// The spans of `trace` once at least `min` arrived (10 s at most).
    async fn spans(&self, trace: &str, min: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&self.file).unwrap_or_default();
            let spans: Vec<Value> = text
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .filter(|s| s["traceId"] == trace)
                .collect();
            if spans.len() >= min || Instant::now() > deadline {
                let errors = std::fs::read_to_string(self.file.with_extension("jsonl.errors"))
                    .unwrap_or_default();
                assert!(
                    errors.is_empty(),
                    "the receiver refused a request: {errors}"
                );
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn body(portal: std::net::SocketAddr, directory: &str, otlp: u16) -> String {
    format!(
        r#"{}
[directory]
url = "{directory}"

[tracing]
otlp_endpoint = "http://127.0.0.1:{otlp}"
sample_ratio = 1.0
service_name = "partnergate-test"

[[routes]]
name = "echo"
path = "/debug/headers"
upstream = "portal"

[[routes]]
name = "portal"
path = "/"
methods = ["GET", "HEAD"]
upstream = "portal"
"#,
        portal_upstream(portal)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_the_collector_and_the_upstream_continues_the_trace() {
    let sink = sink().await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("directory.db").display());
    let portal = Portal::start().await;
    let gw = GatewayBuilder::new(body(portal.addr, &url, sink.port))
        .import(demo_directory())
        .start()
        .await;
    let bob = logged_in(&gw, "bob@acme.example").await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let echo: Value = client()
        .get(gw.url("/debug/headers?secret=s3cr3t-query"))
        .header("cookie", bob.cookie_header())
        .header("traceparent", format!("00-{trace}-{caller_span}-01"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let upstream_tp = echo["headers"]["traceparent"].as_str().unwrap().to_string();
    let parts: Vec<&str> = upstream_tp.split('-').collect();
    assert_eq!(
        (parts[0], parts[1], parts[3]),
        ("00", trace, "01"),
        "{upstream_tp}"
    );
    assert_ne!(
        parts[2], caller_span,
        "the upstream's parent is the gateway's span"
    );

    let spans = sink.spans(trace, 7).await;
    let server = spans
        .iter()
        .find(|s| s["kind"] == 2)
        .unwrap_or_else(|| panic!("a server span in {spans:?}"));
    assert_eq!(server["parentSpanId"], caller_span);
    assert_eq!(
        server["spanId"], parts[2],
        "the span the upstream was told about"
    );
    assert_eq!(server["service"], "partnergate-test");
    assert_eq!(server["name"], "GET echo");
    let attr = |s: &Value, k: &str| {
        s["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["key"] == k)
            .map(|a| a["value"]["stringValue"].as_str().unwrap().to_string())
    };
    assert_eq!(
        attr(server, "partnergate.decision").as_deref(),
        Some("allow")
    );
    assert_eq!(
        attr(server, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(attr(server, "url.path").as_deref(), Some("/debug/headers"));
    let stages: Vec<String> = spans
        .iter()
        .filter(|s| s["parentSpanId"] == server["spanId"] && s["kind"] == 1)
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    for stage in [
        "admission.clean",
        "admission.route",
        "admission.authenticate",
        "admission.policy",
        "admission.limit",
    ] {
        assert!(stages.iter().any(|s| s == stage), "{stage} in {stages:?}");
    }
    assert!(
        spans
            .iter()
            .any(|s| s["kind"] == 3 && s["parentSpanId"] == server["spanId"]),
        "an upstream client span"
    );
    // No cookie, token or query string in any span.
    let text = std::fs::read_to_string(&sink.file).unwrap();
    let session = bob.cookies.values().next().unwrap().clone();
    assert!(!text.contains(&session), "the session token is in a span");
    assert!(
        !text.contains("s3cr3t-query"),
        "the query string is in a span"
    );

    // A request without a trace context starts a new trace; a refused one is traced too.
    let refused = client().get(gw.url("/debug/headers")).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&sink.file).unwrap_or_default();
        let found = text.lines().any(|l| {
            let s: Value = serde_json::from_str(l).unwrap();
            s["kind"] == 2
                && s["traceId"] != trace
                && s.get("parentSpanId").is_none()
                && s["attributes"].to_string().contains("unauthenticated")
        });
        if found {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no span of the refused request: {text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
