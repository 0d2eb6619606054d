//! What does identity cost per request, in nanoseconds?
//!
//! - `bearer`: verifying an `Authorization: Bearer` JWT, on a cache miss (full
//!   signature check, ES256 and RS256) and on a cache hit.
//! - `assertion`: producing `X-Partner-Assertion`, freshly signed or reused.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use partnergate::config::{AssertionConfig, IssuerConfig, KeySource};
use partnergate::jwt::{AssertionClaims, AssertionSigner, BearerVerifier};

const ISSUER: &str = "https://idp.example.com";

/// The unit-test keys and JWKS (src/jwt/testdata).
fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("src/jwt/testdata")
        .join(name)
}

fn unix_now() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_secs()).unwrap_or_default()
}

fn issuers() -> Vec<IssuerConfig> {
    vec![IssuerConfig {
        name: "corp-idp".into(),
        issuer: ISSUER.into(),
        audiences: vec!["partnergate".into()],
        algorithms: vec!["RS256".into(), "ES256".into()],
        keys: Some(KeySource::JwksFile(testdata("jwks.json"))),
        hmac_secret_file: None,
        user_claim: "email".into(),
        leeway: Duration::from_secs(30),
    }]
}

fn verifier(issuers: &[IssuerConfig]) -> BearerVerifier {
    BearerVerifier::from_config(issuers).expect("the test issuer loads")
}

/// A token like an IdP's: a handful of claims, signed with the test key `kid`.
fn token(alg: Algorithm, key_file: &str, kid: &str, now: i64) -> String {
    let pem = std::fs::read(testdata(key_file)).expect("test key readable");
    let key = match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(&pem),
        _ => EncodingKey::from_rsa_pem(&pem),
    }
    .expect("test key parses");
    let claims = serde_json::json!({
        "iss": ISSUER, "aud": "partnergate", "sub": "u-1", "email": "alice@acme.example",
        "iat": now, "exp": now + 3600, "scope": "openid email profile",
    });
    let header = Header {
        kid: Some(kid.into()),
        ..Header::new(alg)
    };
    jsonwebtoken::encode(&header, &claims, &key).expect("test token signs")
}

fn bearer(c: &mut Criterion) {
    let now = unix_now();
    let issuers = issuers();
    let es256 = token(Algorithm::ES256, "ec_p256.pem", "ec-1", now);
    let rs256 = token(Algorithm::RS256, "rsa.pem", "rsa-1", now);
    let mut group = c.benchmark_group("bearer");
    for (name, token) in [
        ("verify_uncached_es256", &es256),
        ("verify_uncached_rs256", &rs256),
    ] {
        // A fresh verifier (built outside the timing) per call, so every call misses the cache.
        group.bench_function(name, |b| {
            b.iter_batched_ref(
                || verifier(&issuers),
                |v| v.verify(black_box(token), now),
                BatchSize::PerIteration,
            )
        });
    }
    let warm = verifier(&issuers);
    for (name, token) in [
        ("verify_cached_es256", &es256),
        ("verify_cached_rs256", &rs256),
    ] {
        warm.verify(token, now).expect("benchmark token verifies");
        group.bench_function(name, |b| b.iter(|| warm.verify(black_box(token), now)));
    }
    group.finish();
}

fn assertion(c: &mut Criterion) {
    let now = unix_now();
    let signer = AssertionSigner::load(&AssertionConfig {
        key_file: testdata("ec_p256.pem"),
        ttl: Duration::from_secs(60),
    })
    .expect("test assertion key loads");
    let mut claims = AssertionClaims {
        sub: "u-1".into(),
        email: "alice@acme.example".into(),
        org: "acme".into(),
        org_type: "reseller".into(),
        roles: vec!["partner-admin".into(), "partner-user".into()],
        account: Some("client-42".into()),
        account_permission: Some("view".into()),
        amr: vec![],
        auth_time: None,
        generation: 1,
    };
    let mut group = c.benchmark_group("assertion");
    signer.sign(&claims, "portal", now);
    group.bench_function("sign_reused", |b| {
        b.iter(|| signer.sign(black_box(&claims), "portal", now))
    });
    // A new directory generation each call: nothing to reuse, always a fresh signature.
    group.bench_function("sign_fresh", |b| {
        b.iter(|| {
            claims.generation += 1;
            signer.sign(black_box(&claims), "portal", now)
        })
    });
    group.finish();
}

/// A cached session cookie → `Identity`: the session and identity caches of the request
/// path in front of a real SQLite directory (each iteration includes a `block_on`).
fn session(c: &mut Criterion) {
    use partnergate::directory::{self, CacheCounters, Directory, DirectoryData};
    use partnergate::session::{SessionState, Sessions};
    use std::sync::Arc;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let demo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/demo-directory.toml");
    let data: DirectoryData =
        toml::from_str(&std::fs::read_to_string(demo).expect("demo directory")).expect("toml");
    let (sessions, token, idle) = rt.block_on(async {
        let store = directory::connect(&url).await.expect("directory");
        store
            .import(&data, unix_now(), false)
            .await
            .expect("import");
        let counters = CacheCounters {
            hit: prometheus::IntCounter::new("hit", "hit").expect("counter"),
            miss: prometheus::IntCounter::new("miss", "miss").expect("counter"),
        };
        let directory = Arc::new(Directory::new(
            store,
            tokio::runtime::Handle::current(),
            10_000,
            Duration::from_secs(300),
            counters,
        ));
        let sessions = Sessions::new(directory, partnergate::clock::system(), 10_000);
        let bob = sessions
            .directory()
            .user_id_by_email("bob@acme.example")
            .await
            .expect("lookup")
            .expect("bob");
        let created = sessions
            .create(
                &bob,
                partnergate::directory::Amr::PWD,
                Duration::from_secs(3600),
            )
            .await
            .expect("session");
        (sessions, created.token, Duration::from_secs(1800))
    });
    let mut group = c.benchmark_group("session");
    group.bench_function("cached session cookie to identity", |b| {
        b.iter(|| {
            rt.block_on(async {
                let SessionState::Valid(live) = sessions
                    .resolve(black_box(&token), idle)
                    .await
                    .expect("resolve")
                else {
                    panic!("session expired during the benchmark");
                };
                let identity = sessions
                    .directory()
                    .identity(&live.user_id)
                    .await
                    .expect("identity");
                black_box(identity)
            })
        })
    });
    group.bench_function("block_on alone (subtract)", |b| {
        b.iter(|| rt.block_on(async { black_box(1) }))
    });
    group.finish();
}

criterion_group!(identity, bearer, assertion, session);
criterion_main!(identity);
