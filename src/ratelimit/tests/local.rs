use std::net::IpAddr;
use std::time::Duration;

use governor::clock::FakeRelativeClock;
use proptest::prelude::*;

use super::support::spec;
use crate::config::RateSpec;
use crate::ratelimit::{LimitKey, Limiter, Verdict};

fn fake(spec: RateSpec) -> (Limiter<FakeRelativeClock>, FakeRelativeClock) {
    let clock = FakeRelativeClock::default();
    (Limiter::with_clock("t", spec, clock.clone()), clock)
}

fn ip(s: &str) -> LimitKey<'static> {
    LimitKey::Ip(s.parse::<IpAddr>().unwrap())
}

fn limited(after: Duration) -> Verdict {
    Verdict::Limited { retry_after: after }
}

#[test]
fn burst_at_once_then_one_per_period() {
    let (limiter, clock) = fake(spec(10.0, 3));
    let key = ip("203.0.113.7");
    for i in 0..3 {
        assert_eq!(limiter.check_local(key), Verdict::Allow, "request {i}");
    }
    assert_eq!(
        limiter.check_local(key),
        limited(Duration::from_millis(100))
    );
    // A limited request does not use up budget.
    assert_eq!(
        limiter.check_local(key),
        limited(Duration::from_millis(100))
    );

    clock.advance(Duration::from_millis(99));
    assert_eq!(limiter.check_local(key), limited(Duration::from_millis(1)));
    clock.advance(Duration::from_millis(1));
    assert_eq!(limiter.check_local(key), Verdict::Allow);
    assert_eq!(
        limiter.check_local(key),
        limited(Duration::from_millis(100))
    );

    // A full refill gives the whole burst again, not more.
    clock.advance(Duration::from_secs(10));
    for _ in 0..3 {
        assert_eq!(limiter.check_local(key), Verdict::Allow);
    }
    assert!(!limiter.check_local(key).is_allowed());
}

#[test]
fn every_key_kind_has_its_own_buckets() {
    let (limiter, _clock) = fake(spec(1.0, 1));
    let keys = [
        ip("203.0.113.7"),
        ip("203.0.113.8"),
        LimitKey::Name("alice@acme.example"),
        LimitKey::Name("bob@acme.example"),
        // A name that reads like an address is not that address.
        LimitKey::Name("203.0.113.7"),
        LimitKey::Whole,
    ];
    for key in keys {
        assert_eq!(limiter.check_local(key), Verdict::Allow, "{key}");
    }
    for key in keys {
        assert_eq!(
            limiter.check_local(key),
            limited(Duration::from_secs(1)),
            "{key}"
        );
    }
    assert_eq!(limiter.keys(), 5, "the whole-route bucket is not a key");
}

#[test]
fn ipv6_shares_a_bucket_per_64_and_mapped_ipv4_is_ipv4() {
    let (limiter, _clock) = fake(spec(1.0, 2));
    assert!(limiter.check_local(ip("2001:db8:1:2::1")).is_allowed());
    assert!(limiter
        .check_local(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"))
        .is_allowed());
    assert!(!limiter.check_local(ip("2001:db8:1:2::99")).is_allowed());
    assert!(limiter.check_local(ip("2001:db8:1:3::1")).is_allowed());

    assert!(limiter.check_local(ip("192.0.2.1")).is_allowed());
    assert!(limiter.check_local(ip("::ffff:192.0.2.1")).is_allowed());
    assert!(!limiter.check_local(ip("192.0.2.1")).is_allowed());
    assert_eq!(limiter.keys(), 3);
}

#[test]
fn evict_idle_drops_keys_whose_bucket_refilled() {
    let (limiter, clock) = fake(spec(10.0, 5));
    for i in 0..10u8 {
        limiter.check_local(LimitKey::Ip(IpAddr::from([198, 51, 100, i])));
    }
    for name in ["a", "b", "c"] {
        limiter.check_local(LimitKey::Name(name));
    }
    limiter.check_local(LimitKey::Whole);
    assert_eq!(limiter.keys(), 13);
    limiter.evict_idle();
    assert_eq!(limiter.keys(), 13, "keys in use stay");

    clock.advance(Duration::from_secs(1));
    let busy = LimitKey::Name("busy");
    for _ in 0..5 {
        limiter.check_local(busy);
    }
    limiter.evict_idle();
    assert_eq!(
        limiter.keys(),
        1,
        "only the key with a drained bucket stays"
    );
    assert!(
        !limiter.check_local(busy).is_allowed(),
        "and keeps its state"
    );
}

#[test]
fn too_many_keys_are_forgotten_at_upkeep() {
    let clock = FakeRelativeClock::default();
    let limiter = Limiter::with_clock_and_cap("t", spec(1.0, 1), clock, 4);
    for i in 0..6u8 {
        limiter.check_local(LimitKey::Ip(IpAddr::from([198, 51, 100, i])));
    }
    limiter.evict_idle();
    assert_eq!(limiter.keys(), 0);
    assert!(limiter
        .check_local(LimitKey::Ip(IpAddr::from([198, 51, 100, 0])))
        .is_allowed());
}

#[test]
fn extreme_specs_do_not_panic() {
    for (per_second, burst) in [
        (1e-30, u32::MAX),
        (1e9, 1),
        (1e12, 0),
        (f64::NAN, 3),
        (0.0, 1),
    ] {
        let (limiter, clock) = fake(spec(per_second, burst));
        assert!(limiter.check_local(LimitKey::Whole).is_allowed());
        clock.advance(Duration::from_secs(1));
        limiter.check_local(LimitKey::Name("x"));
        limiter.evict_idle();
    }
}

#[test]
fn retry_after_secs_rounds_up_to_at_least_one() {
    let cases = [
        (Verdict::Allow, None),
        (Verdict::Unavailable, Some(1)),
        (limited(Duration::ZERO), Some(1)),
        (limited(Duration::from_millis(1)), Some(1)),
        (limited(Duration::from_millis(1200)), Some(2)),
        (limited(Duration::from_secs(3)), Some(3)),
        (limited(Duration::new(3, 1)), Some(4)),
    ];
    for (verdict, want) in cases {
        assert_eq!(verdict.retry_after_secs(), want, "{verdict:?}");
    }
}

#[test]
fn key_text_names_kind_and_bucket() {
    let cases = [
        (ip("203.0.113.7"), "ip:203.0.113.7"),
        (ip("::ffff:203.0.113.7"), "ip:203.0.113.7"),
        (ip("2001:db8:1:2:3:4:5:6"), "ip:2001:db8:1:2::/64"),
        (
            LimitKey::Name("alice@acme.example"),
            "id:alice@acme.example",
        ),
        (LimitKey::Whole, "all"),
    ];
    for (key, want) in cases {
        assert_eq!(key.to_string(), want);
    }
}

proptest! {
    #[test]
    fn exactly_burst_pass_then_limited_for_one_period(
        burst in 1u32..50,
        per_second in 0.1f64..1000.0,
    ) {
        let (limiter, _clock) = fake(spec(per_second, burst));
        let key = LimitKey::Name("k");
        for _ in 0..burst {
            prop_assert_eq!(limiter.check_local(key), Verdict::Allow);
        }
        let period = Duration::from_secs_f64(1.0 / per_second);
        match limiter.check_local(key) {
            Verdict::Limited { retry_after } => {
                let off = retry_after.abs_diff(period);
                prop_assert!(off <= Duration::from_millis(1), "{retry_after:?} vs {period:?}");
            }
            other => prop_assert!(false, "expected Limited, got {other:?}"),
        }
    }
}
