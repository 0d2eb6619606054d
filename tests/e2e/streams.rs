//! Revocation closes open streams: a suspended user's WebSocket, HTTP/2
//! stream and event stream are closed by the gateway at once, without the client sending
//! anything, on every instance; other users' streams keep working. Prints the measured
//! suspend → close times.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use partnergate::directory::{self, OrgStatus};
use tokio_tungstenite::tungstenite::Message;

use crate::common::*;
use crate::policy::logged_in;
use crate::revocation::{import, set_org};

/// How long a revoked stream may stay open (typically a few ms; SQLite polls every 250).
const LIMIT: Duration = Duration::from_secs(5);
/// A tick interval no test waits for: a stream that ends did not end by itself.
const SILENT_MS: u64 = 600_000;

fn body(portal: std::net::SocketAddr, directory: &str) -> String {
    format!(
        "{}\n[directory]\nurl = \"{directory}\"\n\
         [[routes]]\nname = \"ws\"\npath = \"/ws\"\nupstream = \"portal\"\nwebsocket = true\n\n\
         [[routes]]\nname = \"events\"\npath = \"/events\"\nupstream = \"portal\"\n",
        portal_upstream(portal)
    )
}

/// A WebSocket to the portal's echo through `gw`, with `b`'s session, that has echoed
/// `hello` once (see [`open_ws`] for the pingora upgrade race it tolerates).
async fn ws_of(gw: &Gateway, b: &Browser, hello: &str) -> Ws {
    open_ws(
        &format!("ws://{}/ws", gw.http),
        Some(&b.cookie_header()),
        hello,
    )
    .await
}

async fn echo(ws: &mut Ws, text: &str) {
    ws.send(Message::Text(text.into())).await.unwrap();
    let reply = tokio::time::timeout(LIMIT, ws.next())
        .await
        .expect("echo in time")
        .expect("a message")
        .expect("not an error");
    assert_eq!(reply.into_text().unwrap().as_str(), text);
}

/// Wait (sending nothing) until the gateway closes `ws`; the time since `since`.
async fn ws_closed(ws: &mut Ws, who: &str, since: Instant) -> Duration {
    let left = LIMIT.saturating_sub(since.elapsed());
    let end = match tokio::time::timeout(left, ws.next()).await {
        Err(_) => panic!("{who}'s WebSocket still open after {LIMIT:?}"),
        Ok(Some(Ok(Message::Close(frame)))) => format!("close frame {frame:?}"),
        Ok(Some(Ok(m))) => panic!("{who}'s WebSocket got {m:?}"),
        Ok(Some(Err(e))) => format!("error: {e}"),
        Ok(None) => "end of stream".to_string(),
    };
    let after = since.elapsed();
    eprintln!("{who}'s WebSocket ended ({end})");
    after
}

/// `GET /events` as `b`, every tick `every_ms` (the first one at once); `plain` makes it
/// `text/plain` rather than an event stream. Returns the response after its first tick.
async fn open_events(b: &Browser, every_ms: u64, plain: bool) -> reqwest::Response {
    let mut resp = b
        .client
        .get(format!(
            "{}/events?every_ms={every_ms}&plain={plain}",
            b.base
        ))
        .header("cookie", b.cookie_header())
        .header("accept", "text/event-stream")
        .timeout(Duration::from_secs(3600))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let first = tokio::time::timeout(LIMIT, resp.chunk()).await.unwrap();
    assert!(first.unwrap().unwrap().starts_with(b"data: tick 0"));
    resp
}

/// Wait until the gateway ends `resp` (an error or the end of the body) while no tick is
/// due; the time since `since`.
async fn events_closed(resp: &mut reqwest::Response, who: &str, since: Instant) -> Duration {
    let left = LIMIT.saturating_sub(since.elapsed());
    let end = match tokio::time::timeout(left, resp.chunk()).await {
        Err(_) => panic!("{who}'s stream still open after {LIMIT:?}"),
        Ok(Ok(Some(chunk))) => panic!("{who}'s stream got {chunk:?}"),
        Ok(Ok(None)) => "end of body".to_string(),
        Ok(Err(e)) => format!("error: {e:?}"),
    };
    let after = since.elapsed();
    eprintln!("{who}'s {:?} stream ended ({end})", resp.version());
    after
}

/// `resp` still delivers ticks.
async fn ticks(resp: &mut reqwest::Response) {
    for _ in 0..2 {
        let chunk = tokio::time::timeout(LIMIT, resp.chunk()).await.unwrap();
        assert!(chunk.unwrap().unwrap().starts_with(b"data: tick"));
    }
}

async fn closed_total(gw: &Gateway) -> f64 {
    metric_sum(&gw.metrics().await, "partnergate_streams_closed_total", &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspending_an_org_closes_its_websockets_and_event_streams_on_sqlite() {
    let portal = Portal::start().await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/directory.db", dir.path().display());
    let gw = GatewayBuilder::new(body(portal.addr, &url))
        .import(demo_directory())
        .start()
        .await;
    let bob = logged_in(&gw, "bob@acme.example").await;
    let carol = logged_in(&gw, "carol@brightpath.example").await;
    let mut bob_ws = ws_of(&gw, &bob, "hello from bob").await;
    let mut carol_ws = ws_of(&gw, &carol, "hello from carol").await;
    // An event stream over HTTP/1 that sends nothing after its first event.
    let mut bob_events = open_events(&bob, SILENT_MS, false).await;
    assert_eq!(bob_events.version(), reqwest::Version::HTTP_11);
    assert_eq!(closed_total(&gw).await, 0.0);

    let store = directory::connect(&url).await.unwrap();
    let called = Instant::now();
    set_org(&*store, OrgStatus::Suspended).await;
    let committed = called.elapsed();
    let t0 = Instant::now();
    let ws_after = ws_closed(&mut bob_ws, "bob", t0).await;
    let events_after = events_closed(&mut bob_events, "bob", t0).await;
    eprintln!(
        "stream closing (SQLite poll): suspend committed in {committed:?}; bob's WebSocket \
         closed {ws_after:?} and his event stream {events_after:?} after the commit"
    );
    echo(&mut carol_ws, "carol is still here").await;
    assert_eq!(closed_total(&gw).await, 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspending_an_org_closes_its_websockets_on_every_postgres_instance() {
    let schema = PgSchema::new().await;
    let portal = Portal::start().await;
    let a = GatewayBuilder::new(body(portal.addr, &schema.url))
        .import(demo_directory())
        .start()
        .await;
    let b = GatewayBuilder::new(body(portal.addr, &schema.url))
        .start()
        .await;
    let bob = logged_in(&a, "bob@acme.example").await;
    let alice = logged_in(&a, "alice@acme.example").await;
    let carol = logged_in(&a, "carol@brightpath.example").await;
    // The sessions live in the shared directory: the same cookies work on b.
    let mut bob_a = ws_of(&a, &bob, "bob on a").await;
    let mut bob_b = ws_of(&b, &bob, "bob on b").await;
    let mut alice_b = ws_of(&b, &alice, "alice on b").await;
    let mut carol_b = ws_of(&b, &carol, "carol on b").await;

    let store = directory::connect(&schema.url).await.unwrap();
    let called = Instant::now();
    set_org(&*store, OrgStatus::Suspended).await;
    let committed = called.elapsed();
    let t0 = Instant::now();
    let on_b = ws_closed(&mut bob_b, "bob (b)", t0).await;
    let alice_on_b = ws_closed(&mut alice_b, "alice (b)", t0).await;
    let on_a = ws_closed(&mut bob_a, "bob (a)", t0).await;
    eprintln!(
        "stream closing (PostgreSQL NOTIFY): suspend committed in {committed:?}; after the \
         commit bob's WebSocket on b closed in {on_b:?}, alice's on b by {alice_on_b:?}, \
         bob's on a by {on_a:?}"
    );
    echo(&mut carol_b, "carol is still here").await;
    assert_eq!(closed_total(&a).await, 1.0);
    assert_eq!(closed_total(&b).await, 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspending_an_org_cuts_its_http2_streams() {
    let portal = Portal::start().await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/directory.db", dir.path().display());
    let gw = GatewayBuilder::new(body(portal.addr, &url))
        .import(demo_directory())
        .tls()
        .start()
        .await;
    let tls_login = |email: &'static str| {
        let base = gw.tls_url("");
        async move {
            let mut b = Browser::new(base);
            b.client = tls_client();
            assert_eq!(b.login(email, DEMO_PASSWORD, "/").await.status(), 303);
            b
        }
    };
    let bob = tls_login("bob@acme.example").await;
    let carol = tls_login("carol@brightpath.example").await;
    // A plain streamed response (not an event stream): tracked because it is HTTP/2.
    let mut bob_stream = open_events(&bob, SILENT_MS, true).await;
    assert_eq!(bob_stream.version(), reqwest::Version::HTTP_2);
    let mut carol_stream = open_events(&carol, 100, true).await;
    assert_eq!(carol_stream.version(), reqwest::Version::HTTP_2);

    let store = directory::connect(&url).await.unwrap();
    let called = Instant::now();
    set_org(&*store, OrgStatus::Suspended).await;
    let committed = called.elapsed();
    let after = events_closed(&mut bob_stream, "bob", Instant::now()).await;
    eprintln!(
        "stream closing (HTTP/2, SQLite poll): suspend committed in {committed:?}; bob's \
         stream ended {after:?} after the commit"
    );
    ticks(&mut carol_stream).await;
    assert_eq!(closed_total(&gw).await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_out_everywhere_closes_that_users_streams_and_an_import_closes_none() {
    let portal = Portal::start().await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/directory.db", dir.path().display());
    let gw = GatewayBuilder::new(body(portal.addr, &url))
        .import(demo_directory())
        .start()
        .await;
    let bob = logged_in(&gw, "bob@acme.example").await;
    let alice = logged_in(&gw, "alice@acme.example").await;
    let mut bob_ws = ws_of(&gw, &bob, "bob").await;
    let mut alice_ws = ws_of(&gw, &alice, "alice").await;

    // Re-importing the directory touches everyone (it defines roles) and revokes
    // nothing: every stream is re-checked, none is closed.
    let applied = |m: String| metric_sum(&m, "partnergate_directory_changes_applied_total", &[]);
    let before = applied(gw.metrics().await);
    tokio::task::block_in_place(|| {
        import(&gw, &std::fs::read_to_string(demo_directory()).unwrap())
    });
    let start = Instant::now();
    while applied(gw.metrics().await) == before {
        assert!(start.elapsed() < LIMIT, "import not applied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    echo(&mut bob_ws, "bob after the import").await;
    echo(&mut alice_ws, "alice after the import").await;
    assert_eq!(closed_total(&gw).await, 0.0);

    // Logging bob out everywhere ends his sessions: his stream closes, alice's (same
    // org) stays.
    let store = directory::connect(&url).await.unwrap();
    let bob_id = store
        .user_by_email("bob@acme.example")
        .await
        .unwrap()
        .unwrap()
        .id;
    let called = Instant::now();
    assert_eq!(
        store
            .delete_user_sessions(&bob_id, now())
            .await
            .unwrap()
            .len(),
        1
    );
    let committed = called.elapsed();
    let after = ws_closed(&mut bob_ws, "bob", Instant::now()).await;
    eprintln!(
        "stream closing (logout everywhere, SQLite poll): committed in {committed:?}; bob's \
         WebSocket closed {after:?} later"
    );
    echo(&mut alice_ws, "alice is still here").await;
    assert_eq!(closed_total(&gw).await, 1.0);
}
