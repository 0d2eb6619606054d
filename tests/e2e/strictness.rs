//! Protocol strictness, tested as an attacker would: malformed or ambiguous HTTP/1.1 heads
//! over raw TCP and malformed HTTP/2 frames over TLS. For each family the gateway answers
//! a 4xx or gives up the connection (RST_STREAM / GOAWAY for HTTP/2), nothing reaches the
//! upstream (a [`Sink`] that records every byte), and a normal request still works
//! afterwards.

use std::time::Duration;

use crate::common::h2::{self, Outcome, CONTINUATION, DATA, END_HEADERS, END_STREAM, H2};
use crate::common::sink::Sink;
use crate::common::{raw, GatewayBuilder};

/// A gateway with one open route to a recording upstream.
struct Setup {
    sink: Sink,
    gw: crate::common::Gateway,
}

impl Setup {
    async fn start() -> Setup {
        Setup::with(GatewayBuilder::new).await
    }

    async fn tls() -> Setup {
        Setup::with(|body| GatewayBuilder::new(body).tls()).await
    }

    async fn with(build: impl FnOnce(String) -> GatewayBuilder) -> Setup {
        let sink = Sink::start();
        let body = format!(
            "[upstreams.sink]\naddrs = [\"{}\"]\n\n[[routes]]\nname = \"sink\"\npath = \"/\"\nupstream = \"sink\"\nauth = \"none\"\n",
            sink.addr
        );
        let gw = build(body).start().await;
        Setup { sink, gw }
    }

    /// Send `wire` as is; the gateway must answer one of `want` or close without answering
    /// when `want` contains 0. Returns the status (0: closed).
    async fn refused(&self, wire: &[u8], want: &[u16]) -> u16 {
        let shown = String::from_utf8_lossy(&wire[..wire.len().min(120)]).into_owned();
        let status = raw::send(self.gw.http, wire).await.map_or(0, |r| r.status);
        assert!(
            want.contains(&status),
            "{shown:?}: got {status}, want {want:?}"
        );
        status
    }

    /// A normal request still gets through, and it is the only one the upstream ever saw.
    async fn still_serving_and_nothing_forwarded(&self) {
        let ok = raw::get(self.gw.http, "/control").await;
        assert_eq!(ok.status, 200, "{ok:?}");
        assert_eq!(ok.body, "ok");
        self.only_control_forwarded();
    }

    /// The same over HTTP/2 on a fresh TLS connection.
    async fn still_serving_over_h2(&self) {
        let addr = self.gw.https.expect("tls listener");
        let outcome = tokio::task::spawn_blocking(move || {
            let mut c = H2::connect(addr);
            c.headers(1, &h2::get_fields("localhost", "/control"), true);
            c.outcome(1)
        })
        .await
        .expect("h2 control");
        assert_eq!(outcome, Outcome::Status(200));
        self.only_control_forwarded();
    }

    /// The upstream saw the control requests and nothing else.
    fn only_control_forwarded(&self) {
        let lines = self.sink.request_lines();
        assert!(
            !lines.is_empty() && lines.iter().all(|l| l == "GET /control HTTP/1.1"),
            "the upstream received: {:?}",
            self.sink
                .received()
                .iter()
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
        );
    }

    /// The access log has a line with this status and reason.
    async fn logged(&self, status: u16, reason: &str) {
        self.gw
            .access_line(|l| l["status"] == status && l["reason"] == reason)
            .await;
    }

    /// The access log has `n` lines with this reason (waiting up to 10 s for them).
    async fn logged_times(&self, reason: &str, n: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let lines = self.gw.access_lines(0).await;
            let found = lines.iter().filter(|l| l["reason"] == reason).count();
            if found >= n {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{found} of {n} lines with reason {reason}: {lines:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Run `exchange` on a fresh HTTP/2 connection (on a blocking thread).
    async fn h2<T: Send + 'static>(
        &self,
        exchange: impl FnOnce(&mut H2) -> T + Send + 'static,
    ) -> T {
        let addr = self.gw.https.expect("tls listener");
        tokio::task::spawn_blocking(move || exchange(&mut H2::connect(addr)))
            .await
            .expect("h2 exchange")
    }

    /// One request on a fresh HTTP/2 connection: `fields` in one HEADERS frame.
    async fn h2_request(&self, fields: Vec<(&'static str, &'static str)>) -> Outcome {
        let shown = format!("{fields:?}");
        let outcome = self
            .h2(move |c| {
                c.headers(1, &fields, true);
                c.outcome(1)
            })
            .await;
        assert!(outcome.is_refusal(), "{shown}: {outcome:?}");
        outcome
    }
}

fn get(path: &'static str) -> Vec<(&'static str, &'static str)> {
    h2::get_fields("localhost", path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h1_whitespace_in_the_request_target() {
    let t = Setup::start().await;
    for wire in [
        &b"GET /a b c HTTP/1.1\r\nHost: localhost\r\n\r\n"[..],
        b"GET /a\tb HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"GET /a?q=x y HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"GET /a  HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"GET  /a HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"GET /a HTTP/1.1 \r\nHost: localhost\r\n\r\n",
    ] {
        t.refused(wire, &[400]).await;
    }
    t.logged(400, "bad_request_line").await;
    // Each head on a kept-alive connection is checked, not only the first one.
    let mut conn = tokio::net::TcpStream::connect(t.gw.http)
        .await
        .expect("connect");
    let first = raw::send_on(
        &mut conn,
        b"GET /control HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .await;
    assert_eq!(first.map(|r| r.status), Some(200));
    let second = raw::send_on(&mut conn, b"GET /a b HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert_eq!(second.map(|r| r.status), Some(400));
    t.still_serving_and_nothing_forwarded().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h1_bare_line_endings() {
    let t = Setup::start().await;
    for wire in [
        &b"GET /a HTTP/1.1\nHost: localhost\n\n"[..],
        b"GET /a HTTP/1.1\r\nHost: localhost\nX-A: 1\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: localhost\r\n\n",
        b"GET /a HTTP/1.1\rHost: localhost\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: localhost\rX-A: 1\r\n\r\n",
    ] {
        t.refused(wire, &[400]).await;
    }
    t.logged(400, "bare_lf").await;
    t.still_serving_and_nothing_forwarded().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h1_obs_fold_and_whitespace_before_the_colon() {
    let t = Setup::start().await;
    for wire in [
        &b"GET /a HTTP/1.1\r\nHost: localhost\r\nX-A: 1\r\n 2\r\n\r\n"[..],
        b"GET /a HTTP/1.1\r\nHost: localhost\r\nX-A: 1\r\n\t2\r\n\r\n",
        b"GET /a HTTP/1.1\r\n Host: localhost\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost : localhost\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: localhost\r\nX-A : 1\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: localhost\r\nX-A\t: 1\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    ] {
        t.refused(wire, &[400]).await;
    }
    t.still_serving_and_nothing_forwarded().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h1_content_length_framing() {
    let t = Setup::start().await;
    for wire in [
        &b"POST /a HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nhello"[..],
        b"POST /a HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        b"POST /a HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5, 5\r\n\r\nhello",
        b"POST /a HTTP/1.1\r\nHost: localhost\r\nContent-Length: +5\r\n\r\nhello",
        b"POST /a HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0x5\r\n\r\nhello",
    ] {
        t.refused(wire, &[400]).await;
    }
    t.logged(400, "duplicate_content_length").await;
    t.still_serving_and_nothing_forwarded().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h1_content_length_with_transfer_encoding() {
    let t = Setup::start().await;
    for wire in [
        &b"POST /a HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"[..],
        b"POST /a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ] {
        t.refused(wire, &[400]).await;
    }
    t.logged(400, "content_length_with_transfer_encoding").await;
    t.still_serving_and_nothing_forwarded().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h1_transfer_encoding_other_than_chunked() {
    let t = Setup::start().await;
    for te in [
        &b"gzip, chunked"[..],
        b"chunked, chunked",
        b"Chunked ",
        b"chunked\t",
        b"  chunked",
        b"identity",
        b"gzip",
        b"chunked, identity",
        b"xchunked",
    ] {
        let mut wire = b"POST /a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: ".to_vec();
        wire.extend_from_slice(te);
        wire.extend_from_slice(b"\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
        t.refused(&wire, &[400]).await;
    }
    t.refused(
        b"POST /a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        &[400],
    )
    .await;
    t.refused(
        b"POST /a HTTP/1.0\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        &[400],
    )
    .await;
    t.logged(400, "transfer_encoding_not_chunked").await;
    t.still_serving_and_nothing_forwarded().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h1_request_target_forms_other_than_origin() {
    let t = Setup::start().await;
    for wire in [
        &b"GET http://evil.example/a HTTP/1.1\r\nHost: localhost\r\n\r\n"[..],
        b"GET http://localhost/a HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"GET http://localhost/a HTTP/1.1\r\n\r\n",
        b"GET https://localhost:443/a HTTP/1.1\r\nHost: localhost:443\r\n\r\n",
        b"GET foo:bar HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"GET localhost:80 HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"CONNECT localhost:80 HTTP/1.1\r\nHost: localhost:80\r\n\r\n",
    ] {
        t.refused(wire, &[400, 405]).await;
    }
    t.logged(400, "not_origin_form").await;
    t.still_serving_and_nothing_forwarded().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h1_thousands_of_tiny_headers() {
    let t = Setup::start().await;
    let mut wire = b"GET /a HTTP/1.1\r\nHost: localhost\r\n".to_vec();
    for i in 0..5000 {
        wire.extend_from_slice(format!("a{i}: b\r\n").as_bytes());
    }
    wire.extend_from_slice(b"\r\n");
    t.refused(&wire, &[400, 431]).await;
    // Just under the count limit, but over the header byte limit.
    let mut wire = b"GET /a HTTP/1.1\r\nHost: localhost\r\n".to_vec();
    for i in 0..200 {
        wire.extend_from_slice(format!("x-{i:03}: {}\r\n", "v".repeat(100)).as_bytes());
    }
    wire.extend_from_slice(b"\r\n");
    t.refused(&wire, &[431]).await;
    t.still_serving_and_nothing_forwarded().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_uppercase_header_names() {
    let t = Setup::tls().await;
    let mut fields = get("/a");
    fields.push(("X-Upper", "1"));
    t.h2_request(fields).await;
    let mut fields = get("/a");
    fields.push(("host", "localhost"));
    fields.push(("Cookie", "a=1"));
    t.h2_request(fields).await;
    t.still_serving_over_h2().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_malformed_pseudo_headers() {
    let t = Setup::tls().await;
    let mut dup_path = get("/a");
    dup_path.push((":path", "/b"));
    t.h2_request(dup_path).await;
    let mut dup_method = get("/a");
    dup_method.insert(0, (":method", "POST"));
    t.h2_request(dup_method).await;
    let mut unknown = get("/a");
    unknown.push((":foo", "bar"));
    t.h2_request(unknown).await;
    let mut late = vec![(":method", "GET"), (":scheme", "https"), ("x-a", "1")];
    late.push((":authority", "localhost"));
    late.push((":path", "/a"));
    t.h2_request(late).await;
    let mut status = get("/a");
    status.push((":status", "200"));
    t.h2_request(status).await;
    t.h2_request(vec![
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", "localhost"),
    ])
    .await;
    t.still_serving_over_h2().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_path_not_starting_with_a_slash() {
    let t = Setup::tls().await;
    for path in ["a/b", "", "*", "http://localhost/a", "?x=1", "/a b"] {
        t.h2_request(get(path)).await;
    }
    t.still_serving_over_h2().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_connection_specific_headers() {
    let t = Setup::tls().await;
    for (name, value) in [
        ("transfer-encoding", "chunked"),
        ("connection", "close"),
        ("keep-alive", "timeout=5"),
        ("upgrade", "websocket"),
        ("proxy-connection", "keep-alive"),
        ("te", "gzip"),
    ] {
        let mut fields = get("/a");
        fields.push((name, value));
        t.h2_request(fields).await;
    }
    t.still_serving_over_h2().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_content_length_not_matching_the_data() {
    let t = Setup::tls().await;
    for (declared, data) in [("10", &b"abc"[..]), ("2", b"hello"), ("0", b"x")] {
        let outcome = t
            .h2(move |c| {
                let fields = [
                    (":method", "POST"),
                    (":scheme", "https"),
                    (":authority", "localhost"),
                    (":path", "/a"),
                    ("content-length", declared),
                ];
                let mut wire = h2::frame(h2::HEADERS, END_HEADERS, 1, &h2::block(&fields));
                wire.extend(h2::frame(DATA, END_STREAM, 1, data));
                let _ = c.write(&wire);
                c.outcome(1)
            })
            .await;
        assert!(outcome.is_refusal(), "{declared} vs {data:?}: {outcome:?}");
    }
    t.logged_times("stream_reset", 3).await;
    t.still_serving_over_h2().await;
}

/// `count` requests, each reset (CANCEL) right after its HEADERS, in one write.
fn headers_then_reset(count: u32) -> Vec<u8> {
    let mut wire = Vec::new();
    for i in 0..count {
        let stream = 1 + 2 * i;
        let block = h2::block(&get("/a"));
        wire.extend(h2::frame(
            h2::HEADERS,
            END_HEADERS | END_STREAM,
            stream,
            &block,
        ));
        wire.extend(h2::frame(h2::RST_STREAM, 0, stream, &8u32.to_be_bytes()));
    }
    wire
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_rapid_reset() {
    let t = Setup::tls().await;
    // A few cancelled requests: none is forwarded, and the connection goes on serving.
    let after = t
        .h2(|c| {
            c.write(&headers_then_reset(10)).expect("write");
            c.headers(21, &get("/control"), true);
            c.outcome(21)
        })
        .await;
    assert_eq!(after, Outcome::Status(200));
    t.logged_times("stream_reset", 10).await;
    t.only_control_forwarded();
    // A flood of them: the connection is given up (GOAWAY ENHANCE_YOUR_CALM).
    let ended = t
        .h2(|c| {
            c.write(&headers_then_reset(40)).expect("write");
            c.connection_ends()
        })
        .await;
    assert!(ended, "the gateway kept a rapid-reset connection open");
    t.still_serving_over_h2().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_continuation_flood() {
    let t = Setup::tls().await;
    let ended = t
        .h2(|c| {
            let first = h2::block(&get("/a"));
            let _ = c.write(&h2::frame(h2::HEADERS, END_STREAM, 1, &first));
            let filler = h2::block(&[("x-filler", &"v".repeat(1000))]);
            let chunk: Vec<u8> = (0..16)
                .flat_map(|_| h2::frame(CONTINUATION, 0, 1, &filler))
                .collect();
            // 100 MB of header block if the gateway kept reading; a failed write means it
            // stopped reading, and then it must also end the connection.
            for _ in 0..6_000 {
                if c.write(&chunk).is_err() {
                    break;
                }
            }
            c.connection_ends()
        })
        .await;
    assert!(ended, "the gateway kept reading CONTINUATION frames");
    t.still_serving_over_h2().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_senders_are_cut_off() {
    let t = Setup::with(|body| {
        GatewayBuilder::new(body)
            .tls()
            .server("request_header_timeout = \"1s\"")
    })
    .await;
    // HTTP/1.1: a partial head, then one byte every 100 ms for up to 10 s.
    let mut conn = tokio::net::TcpStream::connect(t.gw.http)
        .await
        .expect("connect");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    conn.write_all(b"GET /a HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .expect("partial head");
    let mut cut = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if conn.write_all(b"x").await.is_err() {
            cut = true;
            break;
        }
        let mut byte = [0u8; 1];
        match tokio::time::timeout(Duration::from_millis(1), conn.read(&mut byte)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                cut = true;
                break;
            }
            _ => {}
        }
    }
    assert!(cut, "a trickling HTTP/1.1 head kept its connection");
    // HTTP/2: a HEADERS frame announced but never finished.
    let ended = t
        .h2(|c| {
            let block = h2::block(&get("/a"));
            let whole = h2::frame(h2::HEADERS, END_HEADERS | END_STREAM, 1, &block);
            let _ = c.write(&whole[..12]);
            c.connection_ends()
        })
        .await;
    assert!(ended, "a partial HTTP/2 HEADERS frame kept its connection");
    // HTTP/2: a connection preface that never completes.
    let addr = t.gw.https.expect("tls listener");
    let ended = tokio::task::spawn_blocking(move || {
        let mut c = H2::tls(addr);
        let _ = c.write(b"PRI * HTTP/2.0\r\n");
        c.connection_ends()
    })
    .await
    .expect("h2 preface");
    assert!(ended, "a partial HTTP/2 preface kept its connection");
    t.still_serving_and_nothing_forwarded().await;
}
