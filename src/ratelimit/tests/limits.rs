use std::net::IpAddr;
use std::sync::Arc;

use super::support::config;
use crate::config::{RateKey, RedisFallback};
use crate::ratelimit::{Applied, LimitKey, RateLimits, Verdict};

fn text(route_a: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:8080"
rate_limit_per_ip = {{ per_second = 1, burst = 2 }}

[upstreams.portal]
addrs = ["127.0.0.1:9000"]

[[routes]]
name = "a"
path = "/a"
upstream = "portal"
rate_limit = {route_a}

[[routes]]
name = "open"
path = "/open"
upstream = "portal"

[[routes]]
name = "login"
path = "/login"
upstream = "portal"
auth = "none"
rate_limit = {{ key = "route", per_second = 5, burst = 1, on_redis_error = "deny" }}
"#
    )
}

const SLOW_USER: &str = r#"{ key = "user", per_second = 0.001, burst = 1 }"#;

#[test]
fn build_maps_every_configured_limit() {
    let limits = RateLimits::build(&config(&text(SLOW_USER)), None, None);

    let global = limits.global().unwrap();
    assert_eq!(global.label(), "global");
    assert_eq!(global.spec().burst, 2);
    assert_eq!(global.spec().on_redis_error, RedisFallback::Local);
    // Login defaults (`[login] rate_limit_per_ip`): 1/s, burst 10, fail closed.
    assert_eq!(limits.login().label(), "login");
    assert_eq!(limits.login().spec().burst, 10);
    assert_eq!(limits.login().spec().on_redis_error, RedisFallback::Deny);

    let (key, a) = limits.route(0).unwrap();
    assert_eq!((*key, a.label()), (RateKey::User, "route:a"));
    assert!(limits.route(1).is_none(), "route without rate_limit");
    let (key, login_route) = limits.route(2).unwrap();
    assert_eq!(*key, RateKey::Route);
    assert_eq!(
        login_route.label(),
        "route:login",
        "never the login limit's label"
    );
    assert!(limits.route(3).is_none());

    let labels: Vec<_> = limits.all().map(|l| l.label().to_owned()).collect();
    assert_eq!(labels, ["global", "login", "route:a", "route:login"]);
}

#[test]
fn rebuild_keeps_state_of_unchanged_limits_only() {
    let alice = LimitKey::Name("alice@acme.example");
    let client = LimitKey::Ip(IpAddr::from([203, 0, 113, 7]));
    let first = RateLimits::build(&config(&text(SLOW_USER)), None, None);
    let a = &first.route(0).unwrap().1;
    assert!(a.check_local(alice).is_allowed());
    assert!(!a.check_local(alice).is_allowed());
    let global = first.global().unwrap();
    global.check_local(client);
    global.check_local(client);
    assert!(!global.check_local(client).is_allowed());

    let same = RateLimits::build(&config(&text(SLOW_USER)), Some(&first), None);
    assert!(Arc::ptr_eq(
        &first.route(0).unwrap().1,
        &same.route(0).unwrap().1
    ));
    assert!(
        !same.route(0).unwrap().1.check_local(alice).is_allowed(),
        "a limited key stays limited across a reload"
    );
    assert!(!same.global().unwrap().check_local(client).is_allowed());

    // Same key, new rate: fresh state.
    let faster = r#"{ key = "user", per_second = 0.002, burst = 1 }"#;
    let changed = RateLimits::build(&config(&text(faster)), Some(&same), None);
    assert!(changed.route(0).unwrap().1.check_local(alice).is_allowed());
    assert!(Arc::ptr_eq(
        &same.route(2).unwrap().1,
        &changed.route(2).unwrap().1
    ));

    // Same rate, new key: fresh state too.
    let by_org = r#"{ key = "org", per_second = 0.001, burst = 1 }"#;
    let rekeyed = RateLimits::build(&config(&text(by_org)), Some(&same), None);
    assert!(rekeyed.route(0).unwrap().1.check_local(alice).is_allowed());
}

#[tokio::test]
async fn without_redis_every_check_is_local_and_immediate() {
    let limits = RateLimits::build(&config(&text(SLOW_USER)), None, None);
    let login = limits.login();
    let client = LimitKey::Ip(IpAddr::from([203, 0, 113, 9]));
    for _ in 0..10 {
        assert_eq!(
            limits.check_fast(login, client),
            Some((Verdict::Allow, None))
        );
    }
    let (verdict, fallback) = limits.check(login, client).await;
    assert!(matches!(verdict, Verdict::Limited { .. }), "{verdict:?}");
    assert_eq!(fallback, None);
    assert_eq!(Applied::from(verdict), Applied::Limited(verdict));
    assert_eq!(Applied::from(Verdict::Allow), Applied::Allowed);
}

#[test]
fn limits_can_live_in_a_shared_snapshot_and_checks_on_any_worker() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    let limits = RateLimits::build(&config(&text(SLOW_USER)), None, None);
    send_sync(&limits);
    let check = limits.check(limits.login(), LimitKey::Whole);
    send(&check);
}
