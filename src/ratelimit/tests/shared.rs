//! Against the Redis at 127.0.0.1:6379; every test uses its own key prefix.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;

use super::support::{config, spec};
use crate::config::{RedisConfig, RedisFallback};
use crate::ratelimit::{LimitKey, RateLimits, SharedStore, Verdict};

const REDIS: &str = "redis://127.0.0.1:6379";

fn redis_config(url: &str, test: &str) -> RedisConfig {
    RedisConfig {
        url: url.to_owned(),
        key_prefix: format!("pgtest:{test}:{:016x}:", rand::random::<u64>()),
        timeout: Duration::from_millis(300),
    }
}

/// A store on `runtime` that has connected, or a loud failure.
async fn connected(config: &RedisConfig, runtime: &Handle) -> Arc<SharedStore> {
    let store = SharedStore::new(config, runtime);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !store.is_connected() {
        assert!(
            Instant::now() < deadline,
            "Redis at {} is not reachable: the shared rate-limit tests need it running",
            config.url
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(store.is_up());
    store
}

async fn pttl(key: &str) -> i64 {
    let client = ::redis::Client::open(REDIS).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    ::redis::cmd("PTTL")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn burst_then_limited_then_one_per_period() {
    let config = redis_config(REDIS, "burst");
    let store = connected(&config, &Handle::current()).await;
    let rate = spec(2.0, 3);
    let key = LimitKey::Name("alice@acme.example");
    for i in 0..3 {
        assert_eq!(
            store.check("route:a", key, rate).await,
            Ok(Verdict::Allow),
            "request {i}"
        );
    }
    match store.check("route:a", key, rate).await {
        Ok(Verdict::Limited { retry_after }) => assert!(
            retry_after > Duration::from_millis(250) && retry_after <= Duration::from_millis(500),
            "{retry_after:?}"
        ),
        other => panic!("expected Limited, got {other:?}"),
    }
    let redis_key = format!("{}rl:route:a:id:alice@acme.example", config.key_prefix);
    let ttl = pttl(&redis_key).await;
    assert!(
        (1..=1500).contains(&ttl),
        "idle keys expire with their bucket: {ttl}"
    );

    // Another key and another label are other buckets.
    assert_eq!(
        store.check("route:a", LimitKey::Name("bob"), rate).await,
        Ok(Verdict::Allow)
    );
    assert_eq!(store.check("route:b", key, rate).await, Ok(Verdict::Allow));

    tokio::time::sleep(Duration::from_millis(510)).await;
    assert_eq!(store.check("route:a", key, rate).await, Ok(Verdict::Allow));
    assert!(matches!(
        store.check("route:a", key, rate).await,
        Ok(Verdict::Limited { .. })
    ));
}

#[tokio::test]
async fn two_gateways_share_one_bucket() {
    let config = redis_config(REDIS, "two");
    let one = connected(&config, &Handle::current()).await;
    let two = connected(&config, &Handle::current()).await;
    let rate = spec(0.01, 4);
    let key = LimitKey::Ip(IpAddr::from([203, 0, 113, 7]));
    let mut allowed = 0;
    for i in 0..10 {
        let store = if i % 2 == 0 { &one } else { &two };
        if store.check("global", key, rate).await.unwrap().is_allowed() {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 4);
}

#[tokio::test]
async fn ipv6_addresses_share_their_64_on_redis_too() {
    let config = redis_config(REDIS, "v6");
    let store = connected(&config, &Handle::current()).await;
    let rate = spec(0.01, 1);
    let first = LimitKey::Ip("2001:db8:1:2::1".parse().unwrap());
    let second = LimitKey::Ip("2001:db8:1:2::2".parse().unwrap());
    assert_eq!(store.check("global", first, rate).await, Ok(Verdict::Allow));
    assert!(!store
        .check("global", second, rate)
        .await
        .unwrap()
        .is_allowed());
}

/// The proxy's case: the connection lives on one runtime, checks come from others.
#[tokio::test]
async fn checks_from_another_runtime() {
    let home = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let config = redis_config(REDIS, "runtime");
    let store = connected(&config, home.handle()).await;
    let rate = spec(0.01, 2);
    let caller = std::thread::spawn({
        let store = Arc::clone(&store);
        move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let mut verdicts = Vec::new();
                for _ in 0..3 {
                    verdicts.push(store.check("global", LimitKey::Whole, rate).await);
                }
                verdicts
            })
        }
    });
    let verdicts = tokio::task::spawn_blocking(move || caller.join().unwrap())
        .await
        .unwrap();
    assert_eq!(verdicts[..2], [Ok(Verdict::Allow), Ok(Verdict::Allow)]);
    assert!(matches!(verdicts[2], Ok(Verdict::Limited { .. })));
    home.shutdown_background();
}

fn unreachable_config(test: &str) -> String {
    let prefix = redis_config(REDIS, test).key_prefix;
    format!(
        r#"
[server]
listen = "127.0.0.1:8080"
rate_limit_per_ip = {{ per_second = 0.01, burst = 2 }}

[upstreams.portal]
addrs = ["127.0.0.1:9000"]

[[routes]]
name = "all"
path = "/"
upstream = "portal"

[redis]
url = "redis://127.0.0.1:1"
key_prefix = "{prefix}"
timeout = "200ms"
"#
    )
}

#[tokio::test]
async fn redis_down_falls_back_at_once() {
    let config = config(&unreachable_config("down"));
    let store = SharedStore::new(config.redis.as_ref().unwrap(), &Handle::current());
    let limits = RateLimits::build(&config, None, Some(Arc::clone(&store)));
    let client = LimitKey::Ip(IpAddr::from([203, 0, 113, 7]));

    let global = limits.global().unwrap();
    let started = Instant::now();
    let mut verdicts = Vec::new();
    for _ in 0..3 {
        let (verdict, fallback) = limits.check(global, client).await;
        assert_eq!(fallback, Some(RedisFallback::Local));
        verdicts.push(verdict.is_allowed());
    }
    assert_eq!(
        verdicts,
        [true, true, false],
        "the local bucket still limits"
    );

    let (verdict, fallback) = limits.check(limits.login(), client).await;
    assert_eq!(
        (verdict, fallback),
        (Verdict::Unavailable, Some(RedisFallback::Deny))
    );
    assert_eq!(
        limits.check_fast(limits.login(), client),
        Some((Verdict::Unavailable, Some(RedisFallback::Deny))),
        "answered without a future"
    );
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "no call waits for the timeout: {:?}",
        started.elapsed()
    );
    assert!(!store.is_up());
}

/// Forwards to Redis; `hold` stops passing Redis's answers on (they are delivered, late,
/// when it is cleared), as a Redis that stopped answering would.
async fn holding_proxy(hold: Arc<AtomicBool>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = TcpStream::connect("127.0.0.1:6379").await.unwrap();
            let (mut client_read, mut client_write) = client.into_split();
            let (mut server_read, mut server_write) = server.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
            });
            let hold = Arc::clone(&hold);
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 16 * 1024];
                loop {
                    while hold.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    match server_read.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            while hold.load(Ordering::SeqCst) {
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                            if client_write.write_all(&buffer[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn breaker_skips_redis_for_a_second_after_a_timeout() {
    let hold = Arc::new(AtomicBool::new(false));
    let proxy = holding_proxy(Arc::clone(&hold)).await;
    let mut config = redis_config(&format!("redis://{proxy}"), "breaker");
    config.timeout = Duration::from_millis(150);
    let store = connected(&config, &Handle::current()).await;
    let rate = spec(1000.0, 1000);
    assert_eq!(
        store.check("global", LimitKey::Whole, rate).await,
        Ok(Verdict::Allow)
    );

    hold.store(true, Ordering::SeqCst);
    let started = Instant::now();
    assert_eq!(store.check("global", LimitKey::Whole, rate).await, Err(()));
    let first = started.elapsed();
    assert!(
        first >= Duration::from_millis(140),
        "waited the timeout: {first:?}"
    );
    assert!(!store.is_up());
    assert!(!store.available());

    let started = Instant::now();
    assert_eq!(store.check("global", LimitKey::Whole, rate).await, Err(()));
    let second = started.elapsed();
    assert!(
        second < Duration::from_millis(20),
        "skipped redis: {second:?}"
    );

    // After the pause, one call probes Redis again and closes the breaker.
    hold.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1050)).await;
    assert!(store.available());
    assert_eq!(
        store.check("global", LimitKey::Whole, rate).await,
        Ok(Verdict::Allow)
    );
    assert!(store.is_up());
    assert_eq!(
        store.check("global", LimitKey::Whole, rate).await,
        Ok(Verdict::Allow)
    );
}

#[tokio::test]
async fn shared_limits_apply_through_rate_limits() {
    let text = unreachable_config("through").replace("redis://127.0.0.1:1", REDIS);
    let config = config(&text);
    let store = connected(config.redis.as_ref().unwrap(), &Handle::current()).await;
    let one = RateLimits::build(&config, None, Some(Arc::clone(&store)));
    let two = RateLimits::build(&config, None, Some(store));
    let client = LimitKey::Ip(IpAddr::from([203, 0, 113, 7]));
    assert_eq!(
        one.check_fast(one.global().unwrap(), client),
        None,
        "asks redis"
    );
    assert_eq!(
        one.check(one.global().unwrap(), client).await,
        (Verdict::Allow, None)
    );
    // Another gateway's limits (own local state) see the same shared bucket.
    assert_eq!(
        two.check(two.global().unwrap(), client).await,
        (Verdict::Allow, None)
    );
    let (verdict, fallback) = two.check(two.global().unwrap(), client).await;
    assert!(matches!(verdict, Verdict::Limited { .. }), "{verdict:?}");
    assert_eq!(fallback, None);
}

#[tokio::test]
async fn script_is_loaded_again_when_redis_forgot_it() {
    let config = redis_config(REDIS, "noscript");
    let store = connected(&config, &Handle::current()).await;
    let rate = spec(0.01, 2);
    assert_eq!(
        store.check("global", LimitKey::Whole, rate).await,
        Ok(Verdict::Allow)
    );
    let client = ::redis::Client::open(REDIS).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let () = ::redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        store.check("global", LimitKey::Whole, rate).await,
        Ok(Verdict::Allow)
    );
    assert!(matches!(
        store.check("global", LimitKey::Whole, rate).await,
        Ok(Verdict::Limited { .. })
    ));
}
