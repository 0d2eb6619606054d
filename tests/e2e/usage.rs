//! Usage data end to end: a logged-in user's requests through the real gateway are counted
//! per route and written to the directory — at graceful shutdown (SQLite) and by the
//! periodic flush (PostgreSQL, `lifecycle.usage_flush`).
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use partnergate::directory::{day_of, Store, UsageFilter};

use crate::common::*;

/// `health` is open; `admin` denies partner users; `shadow` would deny them but is in
/// shadow mode; `echo` and `dashboard` need a session.
fn body(portal: std::net::SocketAddr, directory: &str, extra: &str) -> String {
    format!(
        r#"{}
[directory]
url = "{directory}"

{extra}

[[routes]]
name = "health"
path = "/healthz"
upstream = "portal"
auth = "none"

[[routes]]
name = "admin"
path = "/debug/echo/admin/"
upstream = "portal"
allow_roles = ["owner-admin"]

[[routes]]
name = "shadow"
path = "/debug/echo/shadow/"
upstream = "portal"
allow_roles = ["owner-admin"]
mode = "shadow"

[[routes]]
name = "echo"
path = "/debug/echo/"
upstream = "portal"

[[routes]]
name = "dashboard"
path = "/"
upstream = "portal"
"#,
        portal_upstream(portal),
    )
}

async fn get(b: &mut Browser, path: &str, times: usize, status: u16) {
    for _ in 0..times {
        assert_eq!(b.get(path).await.status(), status, "{path}");
    }
}

/// Bob: 5 dashboard, 3 echo, 2 shadow (counted), 2 admin (denied), 1 open health check;
/// alice: 1 dashboard; one request without a session.
async fn traffic(gw: &Gateway) {
    let base = format!("http://{}", gw.http);
    let mut bob = Browser::new(base.clone());
    assert_eq!(
        bob.login("bob@acme.example", DEMO_PASSWORD, "/")
            .await
            .status(),
        303
    );
    get(&mut bob, "/dashboard", 5, 200).await;
    get(&mut bob, "/debug/echo/x", 3, 200).await;
    get(&mut bob, "/debug/echo/shadow/x", 2, 200).await;
    get(&mut bob, "/debug/echo/admin/x", 2, 403).await;
    get(&mut bob, "/healthz", 1, 200).await;
    let mut alice = Browser::new(base.clone());
    assert_eq!(
        alice
            .login("alice@acme.example", DEMO_PASSWORD, "/")
            .await
            .status(),
        303
    );
    get(&mut alice, "/dashboard", 1, 200).await;
    let mut nobody = Browser::new(base);
    get(&mut nobody, "/dashboard", 1, 302).await;
}

/// (email, route) → requests, from today's usage rows (yesterday's too, should the test
/// run across midnight UTC).
async fn counts(store: &dyn Store) -> BTreeMap<(String, String), i64> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let filter = UsageFilter {
        since_day: day_of(now) - 1,
        ..UsageFilter::default()
    };
    let totals = store.usage(&filter).await.unwrap();
    totals
        .into_iter()
        .map(|t| {
            assert_eq!(t.org_id, "acme");
            ((t.email.unwrap(), t.route), t.requests)
        })
        .collect()
}

fn expected() -> BTreeMap<(String, String), i64> {
    [
        ("alice@acme.example", "dashboard", 1),
        ("bob@acme.example", "dashboard", 5),
        ("bob@acme.example", "echo", 3),
        ("bob@acme.example", "shadow", 2),
    ]
    .into_iter()
    .map(|(user, route, n)| ((user.to_string(), route.to_string()), n))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_counted_per_user_and_route_and_flushed_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("dir.db").display());
    let portal = Portal::start().await;
    let mut gw = GatewayBuilder::new(body(portal.addr, &url, ""))
        .import(demo_directory())
        .start()
        .await;
    traffic(&gw).await;
    let metrics = gw.metrics().await;
    assert_eq!(
        metric_sum(&metrics, "partnergate_usage_dropped_total", &[]),
        0.0
    );
    // The default flush is a minute away: nothing written yet.
    let store = partnergate::directory::open(&url).await.unwrap();
    assert!(counts(&*store).await.is_empty());

    gw.signal("TERM");
    let exit = tokio::task::block_in_place(|| gw.wait_exit(Duration::from_secs(10)))
        .expect("gateway exited");
    assert!(exit.success(), "{exit:?}: {}", gw.stderr());
    assert_eq!(counts(&*store).await, expected(), "{}", gw.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_periodic_flush_adds_counts_once_on_postgres() {
    let schema = PgSchema::new().await;
    let portal = Portal::start().await;
    let extra = "[lifecycle]\nusage_flush = \"1s\"\n";
    let gw = GatewayBuilder::new(body(portal.addr, &schema.url, extra))
        .import(demo_directory())
        .start()
        .await;
    traffic(&gw).await;
    let store = partnergate::directory::open(&schema.url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while counts(&*store).await != expected() {
        assert!(
            Instant::now() < deadline,
            "usage not flushed: {:?}\n{}",
            counts(&*store).await,
            gw.stderr()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Later flushes have nothing more to add.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(counts(&*store).await, expected());
}
