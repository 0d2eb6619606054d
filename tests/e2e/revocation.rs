//! Instant revocation: a suspension made by another process reaches every
//! running gateway on the user's next request. PostgreSQL: two instances sharing one
//! directory, woken by NOTIFY. SQLite: one instance, a `directory import` from the CLI,
//! found by the watcher's poll. Prints the measured suspend → refusal times.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::process::Command;
use std::time::{Duration, Instant};

use partnergate::directory::{self, AuditActor, OrgStatus, Store};

use crate::common::*;
use crate::policy::{logged_in, policy_body};

/// The bound the contract's "next request" is held to here (typically a few ms).
const LIMIT: Duration = Duration::from_secs(2);

fn body(portal: std::net::SocketAddr, directory: &str) -> String {
    policy_body(portal, directory, "")
}

/// The same session cookie, sent to another instance.
fn on(gw: &Gateway, b: &Browser) -> Browser {
    let mut other = Browser::new(format!("http://{}", gw.http));
    other.cookies = b.cookies.clone();
    other
}

async fn status(b: &Browser, path: &str) -> u16 {
    b.client
        .get(format!("{}{path}", b.base))
        .header("cookie", b.cookie_header())
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Poll every 5 ms until `done(status)`; the time it took, or a panic after `LIMIT`.
async fn time_until(b: &Browser, path: &str, done: impl Fn(u16) -> bool) -> Duration {
    let start = Instant::now();
    loop {
        let s = status(b, path).await;
        if done(s) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < LIMIT,
            "{} still answers {s} after {LIMIT:?}",
            b.base
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn refused(s: u16) -> bool {
    s != 200
}

pub(crate) async fn set_org(store: &dyn Store, status: OrgStatus) {
    store
        .set_org_status("acme", status, &AuditActor::system(), now())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspending_an_org_refuses_its_users_on_every_postgres_instance() {
    let schema = PgSchema::new().await;
    let portal = Portal::start().await;
    let a = GatewayBuilder::new(body(portal.addr, &schema.url))
        .import(demo_directory())
        .start()
        .await;
    let b = GatewayBuilder::new(body(portal.addr, &schema.url))
        .start()
        .await;
    // One login: the session lives in the shared directory, so it works on both.
    let bob_a = logged_in(&a, "bob@acme.example").await;
    let bob_b = on(&b, &bob_a);
    let alice_b = on(&b, &logged_in(&a, "alice@acme.example").await);
    let carol_b = on(&b, &logged_in(&a, "carol@brightpath.example").await);
    // Warm both instances' session and identity caches.
    for who in [&bob_a, &bob_b, &alice_b] {
        assert_eq!(status(who, "/deals").await, 200, "{}", who.base);
    }
    assert_eq!(status(&carol_b, "/referrals").await, 200);

    // Another process (here: the test, through the store API) suspends acme.
    let store = directory::connect(&schema.url).await.unwrap();
    let called = Instant::now();
    set_org(&*store, OrgStatus::Suspended).await;
    let committed = called.elapsed();
    let on_b = time_until(&bob_b, "/deals", refused).await;
    eprintln!(
        "revocation (PostgreSQL NOTIFY): suspend committed in {committed:?}; second instance \
         refused bob {on_b:?} after the commit"
    );
    assert!(on_b < LIMIT);
    let on_a = time_until(&bob_a, "/deals", refused).await;
    eprintln!("revocation (PostgreSQL NOTIFY): first instance refused bob {on_a:?} later");
    assert!(refused(status(&alice_b, "/deals").await), "every acme user");
    assert_eq!(
        status(&carol_b, "/referrals").await,
        200,
        "other orgs are untouched"
    );
    // The sessions ended: the old cookie stays refused after reactivation, a new login
    // works on both instances at once.
    set_org(&*store, OrgStatus::Active).await;
    let again = logged_in(&b, "bob@acme.example").await;
    let back = time_until(&again, "/deals", |s| s == 200).await;
    eprintln!("revocation (PostgreSQL NOTIFY): allowed again {back:?} after reactivation");
    assert_eq!(status(&on(&a, &again), "/deals").await, 200);
    assert!(refused(status(&bob_b, "/deals").await));
    assert!(refused(status(&bob_a, "/deals").await));

    let metrics = b.metrics().await;
    let applied = metric_sum(&metrics, "partnergate_directory_changes_applied_total", &[]);
    assert!(applied >= 2.0, "{metrics}");
}

/// `partnergate directory import` of `toml` into `gw`'s directory (the CLI, another process).
pub fn import(gw: &Gateway, toml: &str) {
    let file = gw.dir.path().join("change.toml");
    std::fs::write(&file, toml).unwrap();
    let out = Command::new(BIN)
        .args(["directory", "import"])
        .arg(&file)
        .arg("--config")
        .arg(&gw.config_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "import: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn acme(status: &str) -> String {
    format!(
        "[[org]]\nid = \"acme\"\nname = \"Acme Resellers\"\ntype = \"reseller\"\n\
         status = \"{status}\"\nmax_users = 50\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cli_import_that_suspends_an_org_refuses_its_users_on_sqlite() {
    let portal = Portal::start().await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/directory.db", dir.path().display());
    let gw = GatewayBuilder::new(body(portal.addr, &url))
        .import(demo_directory())
        .start()
        .await;
    let bob = logged_in(&gw, "bob@acme.example").await;
    let carol = logged_in(&gw, "carol@brightpath.example").await;
    assert_eq!(status(&bob, "/deals").await, 200);
    assert_eq!(status(&carol, "/referrals").await, 200);

    let started = Instant::now();
    tokio::task::block_in_place(|| import(&gw, &acme("suspended")));
    let import_took = started.elapsed();
    let refused_after = time_until(&bob, "/deals", refused).await;
    eprintln!(
        "revocation (SQLite poll): `directory import` ran {import_took:?}; the gateway \
         refused bob {refused_after:?} after it exited"
    );
    assert!(refused_after < LIMIT);
    assert_eq!(status(&carol, "/referrals").await, 200);

    tokio::task::block_in_place(|| import(&gw, &acme("active")));
    assert!(refused(status(&bob, "/deals").await), "the session ended");
    let again = logged_in(&gw, "bob@acme.example").await;
    assert_eq!(status(&again, "/deals").await, 200);
}
