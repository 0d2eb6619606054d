//! What does the authorisation decision cost per request, in nanoseconds?
//!
//! - `decision/{10,100,1000}_routes`: route lookup (first match in file order, the
//!   matching route last, so every route is tried) plus every rule of the matched route
//!   (roles, permissions, org type, methods, account grant).
//! - `ratelimit`: one check of a keyed limiter on an existing key (the steady state) and
//!   of a route-wide limiter.
//! - `usage`: counting one request for the usage data, on a key already counted (the
//!   steady state), and spread over 10 000 users × 5 routes (still existing keys, but
//!   the map is large and lookups miss the CPU cache).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use http::Method;
use partnergate::config::{AccountLevel, Config, RateSpec, RedisFallback};
use partnergate::directory::{AccountGrant, Identity, OrgRef, OrgStatus, UserStatus};
use partnergate::policy::{self, Decision, RouteLookup, RouteTable};
use partnergate::ratelimit::{LimitKey, Limiter};
use partnergate::usage::{UsageCounter, DEFAULT_MAX_KEYS};

/// `n` routes; each but the last is a different section, the last the client-account route.
fn table(n: usize) -> RouteTable {
    let mut text = String::from(
        "[server]\nlisten = \"127.0.0.1:8080\"\n[upstreams.portal]\naddrs = [\"127.0.0.1:9000\"]\n",
    );
    for i in 0..n - 1 {
        text.push_str(&format!(
            "[[routes]]\nname = \"section-{i}\"\nhost = \"partners.example.com\"\npath = \"/section-{i}\"\nupstream = \"portal\"\nallow_roles = [\"partner-admin\"]\n"
        ));
    }
    text.push_str(
        "[[routes]]\nname = \"clients\"\npath = \"/clients/{account}/\"\nmethods = [\"GET\", \"POST\"]\nupstream = \"portal\"\nallow_roles = [\"partner-admin\", \"partner-user\"]\nallow_permissions = [\"reports:view\"]\nallow_org_types = [\"reseller\", \"referral\"]\naccount_permission = \"view\"\n",
    );
    let loaded = Config::from_toml(Path::new("bench.toml"), &text).expect("bench config is valid");
    RouteTable::new(Arc::new(loaded.config))
}

fn identity() -> Identity {
    Identity {
        user_id: "u-bob".into(),
        email: "bob@acme.example".into(),
        status: UserStatus::Active,
        org: OrgRef {
            id: "acme".into(),
            name: "Acme".into(),
            org_type: "reseller".into(),
            status: OrgStatus::Active,
            mfa_required: false,
        },
        roles: vec!["partner-user".into()],
        permissions: vec!["dashboard:view".into(), "reports:view".into()],
        grants: (0..20)
            .map(|i| AccountGrant {
                account: format!("client-{i:02}"),
                level: AccountLevel::Standard,
                expires_at: None,
            })
            .collect(),
        second_factors: 0,
    }
}

fn decision(c: &mut Criterion) {
    let id = identity();
    let method = Method::GET;
    let mut group = c.benchmark_group("decision");
    for n in [10, 100, 1000] {
        let routes = table(n);
        group.bench_function(format!("{n}_routes"), |b| {
            b.iter(|| {
                let RouteLookup::Matched(m) = routes.lookup(
                    black_box("partners.example.com"),
                    black_box("/clients/client-07/orders"),
                    &method,
                ) else {
                    panic!("the client route matches");
                };
                let req = policy::Request {
                    method: &method,
                    account: m.account,
                    now: 1_800_000_000,
                    strength: Default::default(),
                };
                let d = policy::decide(m.route, &req, Some(&id));
                assert_eq!(d, Decision::Allow);
                black_box(d)
            })
        });
    }
    group.finish();
}

fn ratelimit(c: &mut Criterion) {
    let spec = RateSpec {
        per_second: 1e9,
        burst: 1_000_000,
        on_redis_error: RedisFallback::Local,
    };
    let by_user = Limiter::new("bench", spec);
    let by_ip = Limiter::new("bench", spec);
    let whole = Limiter::new("bench", spec);
    let user = String::from("u-bob");
    let ip = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));
    let mut group = c.benchmark_group("ratelimit");
    group.bench_function("user_key", |b| {
        b.iter(|| black_box(by_user.check_local(LimitKey::Name(black_box(&user)))))
    });
    group.bench_function("ip_key", |b| {
        b.iter(|| black_box(by_ip.check_local(LimitKey::Ip(black_box(ip)))))
    });
    group.bench_function("route_wide", |b| {
        b.iter(|| black_box(whole.check_local(LimitKey::Whole)))
    });
    group.finish();
}

fn usage(c: &mut Criterion) {
    let dropped = prometheus::IntCounter::new("dropped", "bench").expect("counter");
    let counter = UsageCounter::new(DEFAULT_MAX_KEYS, dropped);
    let now = 1_800_000_000;
    let mut group = c.benchmark_group("usage");
    group.bench_function("record_existing_key", |b| {
        b.iter(|| {
            counter.record(
                black_box(now),
                black_box("acme"),
                black_box("u-0123456789abcdef"),
                black_box("dashboard"),
            )
        })
    });
    let users: Vec<String> = (0..10_000).map(|i| format!("u-{i:016x}")).collect();
    let routes = ["dashboard", "reports", "clients", "orders", "settings"];
    for user in &users {
        for route in routes {
            counter.record(now, "acme", user, route);
        }
    }
    let mut i = 0usize;
    group.bench_function("record_50k_keys", |b| {
        b.iter(|| {
            i = i.wrapping_add(7919);
            let user = &users[i % users.len()];
            let route = routes[i % routes.len()];
            counter.record(black_box(now), "acme", black_box(user), black_box(route))
        })
    });
    group.finish();
    assert_eq!(counter.dropped(), 0);
}

criterion_group!(benches, decision, ratelimit, usage);
criterion_main!(benches);
