//! Expiry with an injected clock: session idle and absolute timeouts and the account
//! lockout, against the real directory stores (SQLite file and PostgreSQL schema).
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::time::Duration;

use partnergate::clock::{Clock, ManualClock};
use partnergate::config::{LoginConfig, RateSpec};
use partnergate::directory::{self, CacheCounters, Directory, DirectoryData};
use partnergate::password::PasswordHasher;
use partnergate::session::{LoginAttempt, LoginResult, LoginService, SessionState, Sessions};

use crate::common::{demo_directory, PgSchema, DEMO_PASSWORD};

const T0: i64 = 1_900_000_000;
const MIN: i64 = 60;

pub(crate) async fn sessions_on(url: &str) -> (Arc<ManualClock>, Arc<Sessions>) {
    let store = directory::connect(url).await.expect("directory");
    let text = std::fs::read_to_string(demo_directory()).unwrap();
    let data: DirectoryData = toml::from_str(&text).unwrap();
    store.import(&data, T0, false).await.expect("import");
    let counters = CacheCounters {
        hit: prometheus::IntCounter::new("hit", "hit").unwrap(),
        miss: prometheus::IntCounter::new("miss", "miss").unwrap(),
    };
    let directory = Arc::new(Directory::new(
        store,
        tokio::runtime::Handle::current(),
        1000,
        Duration::from_secs(30),
        counters,
    ));
    let clock = ManualClock::starting_at(T0);
    let sessions = Arc::new(Sessions::new(directory, clock.clone(), 1000));
    (clock, sessions)
}

async fn user_id(sessions: &Sessions, email: &str) -> String {
    sessions
        .directory()
        .user_id_by_email(email)
        .await
        .unwrap()
        .expect("demo user")
}

async fn idle_and_absolute_expiry(url: &str) {
    let (clock, sessions) = sessions_on(url).await;
    let idle = Duration::from_secs(30 * MIN as u64);
    let bob = user_id(&sessions, "bob@acme.example").await;
    let s = sessions
        .create(
            &bob,
            partnergate::directory::Amr::PWD,
            Duration::from_secs(120 * MIN as u64),
        )
        .await
        .unwrap();
    clock.advance(10 * MIN);
    assert!(matches!(
        sessions.resolve(&s.token, idle).await.unwrap(),
        SessionState::Valid(_)
    ));
    clock.advance(31 * MIN);
    assert!(matches!(
        sessions.resolve(&s.token, idle).await.unwrap(),
        SessionState::Idle
    ));
    // Gone for good, on this instance and in the directory.
    assert!(matches!(
        sessions.resolve(&s.token, idle).await.unwrap(),
        SessionState::Unknown
    ));

    // Kept alive by activity, the session still ends at the absolute timeout.
    let s = sessions
        .create(
            &bob,
            partnergate::directory::Amr::PWD,
            Duration::from_secs(60 * MIN as u64),
        )
        .await
        .unwrap();
    for _ in 0..2 {
        clock.advance(20 * MIN);
        assert!(matches!(
            sessions.resolve(&s.token, idle).await.unwrap(),
            SessionState::Valid(_)
        ));
    }
    clock.advance(21 * MIN);
    assert!(matches!(
        sessions.resolve(&s.token, idle).await.unwrap(),
        SessionState::Expired
    ));
}

#[tokio::test]
async fn session_expiry_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    idle_and_absolute_expiry(&format!("sqlite://{}", dir.path().join("d.db").display())).await;
}

#[tokio::test]
async fn session_expiry_on_postgres() {
    let schema = PgSchema::new().await;
    idle_and_absolute_expiry(&schema.url).await;
}

#[tokio::test]
async fn activity_is_written_at_most_once_a_minute_and_survives_a_cold_cache() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("d.db").display());
    let (clock, sessions) = sessions_on(&url).await;
    let idle = Duration::from_secs(30 * MIN as u64);
    let bob = user_id(&sessions, "bob@acme.example").await;
    let s = sessions
        .create(
            &bob,
            partnergate::directory::Amr::PWD,
            Duration::from_secs(600 * MIN as u64),
        )
        .await
        .unwrap();
    clock.advance(25 * MIN);
    assert!(matches!(
        sessions.resolve(&s.token, idle).await.unwrap(),
        SessionState::Valid(_)
    ));
    assert_eq!(sessions.flush_activity().await.unwrap(), 1);
    assert_eq!(sessions.flush_activity().await.unwrap(), 0);
    // Another instance (a fresh cache on the same store) sees the activity.
    let other = Sessions::new(sessions.directory().clone(), clock.clone(), 1000);
    clock.advance(20 * MIN);
    assert!(matches!(
        other.resolve(&s.token, idle).await.unwrap(),
        SessionState::Valid(_)
    ));
}

pub(crate) fn login_config() -> LoginConfig {
    LoginConfig {
        max_failures: 3,
        max_failures_per_ip: 100,
        lockout: Duration::from_secs(15 * MIN as u64),
        rate_limit_per_ip: RateSpec {
            per_second: 1.0,
            burst: 10,
            on_redis_error: partnergate::config::RedisFallback::Deny,
        },
        password_min_length: 12,
        reset_ttl: Duration::from_secs(1800),
    }
}

async fn attempt(login: &LoginService, password: &str) -> LoginResult {
    let a = LoginAttempt {
        email: "alice@acme.example".into(),
        password: password.into(),
        client_ip: "192.0.2.10".parse().unwrap(),
        request_id: "req-clock".into(),
    };
    let hour = Duration::from_secs(3600);
    login
        .attempt(a, &login_config(), hour)
        .await
        .unwrap()
        .result
}

#[tokio::test]
async fn account_lockout_expires() {
    let dir = tempfile::tempdir().unwrap();
    let (clock, sessions) =
        sessions_on(&format!("sqlite://{}", dir.path().join("d.db").display())).await;
    let login = LoginService::new(sessions.clone(), Arc::new(PasswordHasher::new(1, 8)));
    for _ in 0..3 {
        assert_eq!(
            attempt(&login, "wrong-password-1").await,
            LoginResult::BadCredentials
        );
    }
    clock.advance(MIN);
    assert_eq!(attempt(&login, DEMO_PASSWORD).await, LoginResult::Locked);
    clock.advance(15 * MIN);
    assert_eq!(attempt(&login, DEMO_PASSWORD).await, LoginResult::Success);
    assert!(clock.now() > T0);
}
