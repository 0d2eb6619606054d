// Tests may panic on unexpected values; the crate-wide lint targets runtime code.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::*;

const FIELDS: [&str; 18] = [
    "ts",
    "request_id",
    "client_ip",
    "method",
    "host",
    "path",
    "status",
    "bytes_sent",
    "duration_ms",
    "upstream_ms",
    "route",
    "upstream",
    "user",
    "org",
    "decision",
    "reason",
    "mode",
    "user_agent",
];

fn record(id: &str) -> AccessRecord {
    AccessRecord {
        ts: UNIX_EPOCH + Duration::new(1_795_420_441, 123_999_999),
        request_id: crate::request_id::RequestId::adopt(id).unwrap(),
        client_ip: Some("192.0.2.7".parse().unwrap()),
        method: http::Method::GET,
        host: "partners.example.com".into(),
        path: "/dashboard".into(),
        status: 200,
        bytes_sent: 1234,
        duration_ms: 12.345_678,
        upstream_ms: Some(10.000_4),
        route: Some("dashboard".into()),
        upstream: Some("portal".into()),
        user: Some(Text::Shared(HeaderValue::from_static("alice@acme.example"))),
        org: Some(Text::Owned("acme".into())),
        decision: "allow",
        reason: None,
        mode: "proxy",
        user_agent: Some(HeaderValue::from_static("curl/8.5")),
    }
}

fn bare(id: &str) -> AccessRecord {
    AccessRecord {
        upstream_ms: None,
        route: None,
        upstream: None,
        user: None,
        org: None,
        decision: "deny",
        reason: Some("no_route"),
        user_agent: None,
        ..record(id)
    }
}

fn counter() -> IntCounter {
    IntCounter::new("dropped_total", "test").unwrap()
}

fn to_file(
    path: &Path,
    capacity: usize,
) -> (
    AccessLog,
    tokio::task::JoinHandle<std::io::Result<()>>,
    IntCounter,
) {
    let dropped = counter();
    let (log, writer) = channel(
        AccessLogTarget::File(path.to_path_buf()),
        capacity,
        dropped.clone(),
    );
    (log, tokio::spawn(writer.run()), dropped)
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn lines_are_json_objects_with_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let (log, _writer, _) = to_file(&path, 16);
    log.log(record("r1"));
    log.log(bare("r2"));
    log.flush().await;
    let got = lines(&path);
    assert_eq!(got.len(), 2);
    for line in &got {
        let obj = line.as_object().unwrap();
        assert_eq!(obj.len(), FIELDS.len(), "{line}");
        for field in FIELDS {
            assert!(obj.contains_key(field), "{field} missing in {line}");
        }
    }
    let full = &got[0];
    assert_eq!(full["ts"], "2026-11-23T07:54:01.123Z");
    assert_eq!(full["request_id"], "r1");
    assert_eq!(full["client_ip"], "192.0.2.7");
    assert_eq!(full["method"], "GET");
    assert_eq!(full["user"], "alice@acme.example");
    assert_eq!(full["org"], "acme");
    assert_eq!(full["user_agent"], "curl/8.5");
    assert_eq!(full["status"], 200);
    assert_eq!(full["duration_ms"], 12.346);
    assert_eq!(full["upstream_ms"], 10.0);
    assert_eq!(full["reason"], Value::Null);
    let bare = &got[1];
    for field in [
        "upstream_ms",
        "route",
        "upstream",
        "user",
        "org",
        "user_agent",
    ] {
        assert_eq!(bare[field], Value::Null, "{field}");
    }
    assert_eq!(bare["decision"], "deny");
    assert_eq!(bare["reason"], "no_route");
}

#[test]
fn lines_escape_and_bound_what_clients_send() {
    let mut rec = record("r1");
    rec.path = "/a\"b\\c\u{1}".into();
    rec.user_agent = Some(HeaderValue::from_bytes(&[b'x'; 300]).unwrap());
    rec.duration_ms = 0.000_4;
    rec.upstream_ms = Some(7.5);
    rec.client_ip = None;
    let mut line = Vec::new();
    rec.write_json(&mut line);
    let v: Value = serde_json::from_slice(&line).unwrap();
    assert_eq!(v["path"], "/a\"b\\c\u{1}");
    assert_eq!(v["user_agent"].as_str().unwrap().len(), USER_AGENT_MAX);
    assert_eq!(v["duration_ms"], 0);
    assert_eq!(v["upstream_ms"], 7.5);
    assert_eq!(v["client_ip"], "");
    // Bytes that are not UTF-8 (allowed in a header value) come out replaced.
    rec.user_agent = Some(HeaderValue::from_bytes(b"caf\xe9").unwrap());
    let mut line = Vec::new();
    rec.write_json(&mut line);
    let v: Value = serde_json::from_slice(&line).unwrap();
    assert_eq!(v["user_agent"], "caf\u{fffd}");
}

#[tokio::test]
async fn flush_waits_for_every_earlier_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let (log, _writer, dropped) = to_file(&path, 10_000);
    for i in 0..5_000 {
        log.log(record(&format!("r{i}")));
    }
    log.flush().await;
    let got = lines(&path);
    assert_eq!(got.len(), 5_000);
    assert_eq!(got[4_999]["request_id"], "r4999");
    assert_eq!(dropped.get(), 0);
}

#[tokio::test]
async fn appends_to_an_existing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    std::fs::write(&path, "{\"earlier\":true}\n").unwrap();
    let (log, _writer, _) = to_file(&path, 16);
    log.log(record("r1"));
    log.flush().await;
    let got = lines(&path);
    assert_eq!(got.len(), 2);
    assert_eq!(got[1]["request_id"], "r1");
}

#[tokio::test]
async fn reopen_after_rename_starts_a_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let rotated = dir.path().join("access.log.1");
    let (log, _writer, _) = to_file(&path, 16);
    log.log(record("before"));
    log.flush().await;
    std::fs::rename(&path, &rotated).unwrap();
    log.reopen();
    log.log(record("after"));
    log.flush().await;
    let old = lines(&rotated);
    let new = lines(&path);
    assert_eq!((old.len(), new.len()), (1, 1));
    assert_eq!(old[0]["request_id"], "before");
    assert_eq!(new[0]["request_id"], "after");
}

#[tokio::test]
async fn idle_writer_reopens_without_a_new_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let (log, _writer, _) = to_file(&path, 16);
    log.flush().await;
    std::fs::rename(&path, dir.path().join("access.log.1")).unwrap();
    log.reopen();
    for _ in 0..200 {
        if path.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("reopen did not create {}", path.display());
}

#[test]
fn full_queue_counts_drops_and_never_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let dropped = counter();
    let (log, writer) = channel(
        AccessLogTarget::File(dir.path().join("access.log")),
        1,
        dropped.clone(),
    );
    for i in 0..1_000 {
        log.log(record(&format!("r{i}")));
    }
    assert_eq!(dropped.get(), 999);
    drop(writer);
    log.log(record("after the writer stopped"));
    assert_eq!(dropped.get(), 1_000);
}

#[tokio::test]
async fn writer_stops_after_the_last_handle_and_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let (log, writer, _) = to_file(&path, 16);
    let clone = log.clone();
    log.log(record("r1"));
    drop(log);
    clone.log(record("r2"));
    drop(clone);
    tokio::time::timeout(Duration::from_secs(10), writer)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(lines(&path).len(), 2);
}

#[tokio::test]
async fn missing_directory_fails_the_writer_and_flush_still_returns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join("access.log");
    let (log, writer, dropped) = to_file(&path, 16);
    let err = writer.await.unwrap().unwrap_err();
    assert!(err.to_string().contains("no-such-dir"), "{err}");
    log.flush().await;
    log.log(record("r1"));
    assert_eq!(dropped.get(), 1);
}

#[tokio::test]
async fn stdout_target_ignores_reopen() {
    let (log, writer) = channel(AccessLogTarget::Stdout, 4, counter());
    let writer = tokio::spawn(writer.run());
    log.reopen();
    log.flush().await;
    drop(log);
    writer.await.unwrap().unwrap();
}

#[test]
fn timestamps_are_rfc3339_utc_milliseconds() {
    let at = |secs: u64, nanos: u32| UNIX_EPOCH + Duration::new(secs, nanos);
    for (t, text) in [
        (at(1_795_420_441, 123_999_999), "2026-11-23T07:54:01.123Z"),
        (at(0, 0), "1970-01-01T00:00:00.000Z"),
        (at(951_782_400, 5_000_000), "2000-02-29T00:00:00.005Z"),
        (
            UNIX_EPOCH - Duration::from_millis(1),
            "1969-12-31T23:59:59.999Z",
        ),
    ] {
        assert_eq!(rfc3339_ms(t), text);
    }
    let now = rfc3339_ms(SystemTime::now());
    assert!(
        time::OffsetDateTime::parse(&now, &time::format_description::well_known::Rfc3339).is_ok(),
        "{now}"
    );
}
