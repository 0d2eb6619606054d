//! Stages authenticate and resolve: the real [`Authenticator`] over real sessions, a real
//! bearer verifier (an HS256 issuer whose secret is written to the temp dir) and a SQLite
//! directory in a temp dir.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use super::{config, head, UPSTREAM};
use crate::admission::{
    admit, credentials, Admission, AuthFailure, Authenticator, Caller, Connection, Credentials,
    Identify, Limit, Limits, Principal, Reason, Rules, SessionFailure, Via,
};
use crate::clock::{Clock, ManualClock, SystemClock};
use crate::config::{AuthMode, Config};
use crate::directory::{self, CacheCounters, Directory, DirectoryData, UserStatus};
use crate::jwt::BearerVerifier;
use crate::metrics::Metrics;
use crate::ratelimit::{RateLimits, Verdict as LimitVerdict};
use crate::session::{new_token, Sessions};

const DIRECTORY: &str = r#"
[[role]]
name = "partner-admin"
permissions = ["reports:view"]

[[role]]
name = "partner-user"
permissions = ["dashboard:view"]

[[org]]
id = "acme"
name = "Acme Resellers"
type = "reseller"
status = "active"

[[user]]
email = "alice@acme.example"
org = "acme"
roles = ["partner-admin"]
status = "active"

[[user]]
email = "bob@acme.example"
org = "acme"
roles = ["partner-user"]
status = "active"

[[user]]
email = "carol@acme.example"
org = "acme"
roles = ["partner-admin"]
status = "suspended"
"#;

const ISSUER: &str = "https://idp.test";
const AUDIENCE: &str = "partnergate";
const SECRET: &[u8] = b"admission-tests-hs256-secret-0123456789abcdef";
const IDLE: i64 = 600;
const ABSOLUTE: i64 = 3_600;

/// One gateway's authentication: its configuration, sessions, bearer verifier and the
/// clock the sessions run on (starting at the wall clock: tokens are checked against it).
struct Env {
    _dir: tempfile::TempDir,
    config: Config,
    clock: Arc<ManualClock>,
    sessions: Sessions,
    bearer: BearerVerifier,
}

impl Env {
    async fn new() -> Env {
        let dir = tempfile::TempDir::new().expect("temp dir");
        let secret = dir.path().join("hs256.secret");
        std::fs::write(&secret, SECRET).expect("secret file");
        let config = config(&format!(
            r#"
[server]
listen = "127.0.0.1:8080"
{UPSTREAM}
[[routes]]
name = "portal"
path = "/"
upstream = "portal"
auth = "any"
allow_roles = ["partner-admin"]

[session]
idle_timeout = "{IDLE}s"
absolute_timeout = "{ABSOLUTE}s"

[[issuers]]
name = "idp"
issuer = "{ISSUER}"
audiences = ["{AUDIENCE}"]
algorithms = ["HS256"]
hmac_secret_file = "{}"
"#,
            secret.display()
        ));
        let bearer = BearerVerifier::from_config(&config.issuers).expect("issuers");
        let url = format!("sqlite://{}/directory.db", dir.path().display());
        let store = directory::connect(&url).await.expect("sqlite store");
        let now = SystemClock.now();
        let data: DirectoryData = toml::from_str(DIRECTORY).expect("directory");
        store.import(&data, now, false).await.expect("import");
        let counters = CacheCounters {
            hit: prometheus::IntCounter::new("hit", "hit").unwrap(),
            miss: prometheus::IntCounter::new("miss", "miss").unwrap(),
        };
        let directory = Arc::new(Directory::new(
            store,
            tokio::runtime::Handle::current(),
            100,
            Duration::from_secs(60),
            counters,
        ));
        let clock = ManualClock::starting_at(now);
        let sessions = Sessions::new(directory, clock.clone(), 100);
        Env {
            _dir: dir,
            config,
            clock,
            sessions,
            bearer,
        }
    }

    fn authenticator(&self) -> Authenticator<'_> {
        Authenticator {
            sessions: &self.sessions,
            bearer: &self.bearer,
            session: &self.config.session,
        }
    }

    async fn user_id(&self, email: &str) -> String {
        let directory = self.sessions.directory();
        directory.user_id_by_email(email).await.unwrap().unwrap()
    }

    /// A session of `email`, as its cookie value.
    async fn session_of(&self, email: &str) -> String {
        let id = self.user_id(email).await;
        let absolute = Duration::from_secs(ABSOLUTE as u64);
        self.sessions
            .create(&id, crate::directory::Amr::PWD, absolute)
            .await
            .unwrap()
            .token
    }

    /// A token of the configured issuer naming `user` (an email or a user id).
    fn token(&self, user: &str) -> String {
        let now = SystemClock.now();
        let claims = json!({
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": user,
            "email": user,
            "iat": now,
            "exp": now + 300,
        });
        let key = EncodingKey::from_secret(SECRET);
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap()
    }

    fn cookie(&self, token: &str) -> (String, String) {
        let name = &self.config.session.cookie_name;
        ("cookie".into(), format!("other=1; {name}={token}"))
    }
}

fn headers(pairs: &[(String, String)]) -> HeaderMap {
    let refs: Vec<_> = pairs
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    head("GET", "/", &refs).headers
}

fn bearer(token: &str) -> (String, String) {
    ("authorization".into(), format!("Bearer {token}"))
}

/// A failure by its reason name, a principal as `via user-id`.
fn principal(result: &Result<Principal, AuthFailure>) -> String {
    match result {
        Ok(p) => format!("{} {}", via(&p.via), p.user_id),
        Err(e) => e.reason().as_str().to_string(),
    }
}

fn via(via: &Via) -> &'static str {
    match via {
        Via::Session(_) => "session",
        Via::Bearer => "bearer",
        Via::Assumed => "assumed",
    }
}

fn shown(c: &Credentials<'_>) -> String {
    match c {
        Credentials::Bearer(t) => format!("bearer {t}"),
        Credentials::Session(t) => format!("session {t}"),
        Credentials::None => "none".into(),
    }
}

#[test]
fn credentials_are_read_as_the_route_allows_bearer_first() {
    let token = ("authorization".to_string(), "Bearer tok".to_string());
    let lower = ("authorization".to_string(), "bearer  tok ".to_string());
    let basic = ("authorization".to_string(), "Basic dXNlcg==".to_string());
    let empty = ("authorization".to_string(), "Bearer ".to_string());
    let cookie = ("cookie".to_string(), "a=1; pg=sess; b=2".to_string());
    let other = ("cookie".to_string(), "pgx=sess".to_string());
    let cases = [
        (vec![], AuthMode::Session, "none"),
        (vec![], AuthMode::Bearer, "none"),
        (vec![], AuthMode::Any, "none"),
        (vec![token.clone()], AuthMode::Session, "none"),
        (vec![token.clone()], AuthMode::Bearer, "bearer tok"),
        (vec![token.clone()], AuthMode::Any, "bearer tok"),
        (vec![lower.clone()], AuthMode::Bearer, "bearer tok"),
        (vec![cookie.clone()], AuthMode::Session, "session sess"),
        (vec![cookie.clone()], AuthMode::Bearer, "none"),
        (vec![cookie.clone()], AuthMode::Any, "session sess"),
        (
            vec![token.clone(), cookie.clone()],
            AuthMode::Session,
            "session sess",
        ),
        (
            vec![token.clone(), cookie.clone()],
            AuthMode::Bearer,
            "bearer tok",
        ),
        (
            vec![cookie.clone(), token.clone()],
            AuthMode::Any,
            "bearer tok",
        ),
        // Something in Authorization that is no bearer token does not hide the cookie.
        (
            vec![basic.clone(), cookie.clone()],
            AuthMode::Any,
            "session sess",
        ),
        (
            vec![empty.clone(), cookie.clone()],
            AuthMode::Any,
            "session sess",
        ),
        (vec![other.clone()], AuthMode::Session, "none"),
        (vec![token.clone(), cookie.clone()], AuthMode::None, "none"),
    ];
    for (pairs, mode, want) in cases {
        let map = headers(&pairs);
        assert_eq!(
            shown(&credentials(&map, mode, "pg")),
            want,
            "{pairs:?} {mode:?}"
        );
    }
}

#[tokio::test]
async fn no_credentials_and_bad_cookies() {
    let env = Env::new().await;
    let auth = env.authenticator();
    let unknown = new_token();
    let cases = [
        (vec![], AuthMode::Session, "no_credentials"),
        (vec![], AuthMode::Bearer, "no_credentials"),
        (vec![], AuthMode::Any, "no_credentials"),
        (
            vec![env.cookie("short")],
            AuthMode::Session,
            "unknown_session",
        ),
        (vec![env.cookie("")], AuthMode::Session, "unknown_session"),
        (
            vec![env.cookie(&"!".repeat(unknown.len()))],
            AuthMode::Session,
            "unknown_session",
        ),
        (
            vec![env.cookie(&unknown)],
            AuthMode::Session,
            "unknown_session",
        ),
        (vec![env.cookie(&unknown)], AuthMode::Any, "unknown_session"),
        (
            vec![env.cookie(&unknown)],
            AuthMode::Bearer,
            "no_credentials",
        ),
        (
            vec![bearer("not.a.jwt")],
            AuthMode::Session,
            "no_credentials",
        ),
    ];
    for (pairs, mode, want) in cases {
        let got = auth.authenticate(&headers(&pairs), mode).await;
        assert_eq!(principal(&got), want, "{pairs:?} {mode:?}");
    }
    let got = auth
        .authenticate(&headers(&[env.cookie(&unknown)]), AuthMode::Session)
        .await;
    assert!(matches!(
        got,
        Err(AuthFailure::Session(SessionFailure::Unknown))
    ));
}

#[tokio::test]
async fn a_valid_session_resolves_to_its_users_identity() {
    let env = Env::new().await;
    let auth = env.authenticator();
    let alice = env.user_id("alice@acme.example").await;
    let cookie = env.session_of("alice@acme.example").await;
    let map = headers(&[env.cookie(&cookie)]);
    for mode in [AuthMode::Session, AuthMode::Any] {
        let found = auth.authenticate(&map, mode).await;
        assert_eq!(principal(&found), format!("session {alice}"), "{mode:?}");
        let principal = found.unwrap();
        let Via::Session(live) = &principal.via else {
            panic!("not a session");
        };
        assert_eq!(live.user_id, alice);
        let caller = auth.resolve(principal.clone()).await.unwrap();
        let identity = caller.identity();
        assert_eq!(
            (
                identity.user_id.as_str(),
                identity.email.as_str(),
                identity.org.id.as_str(),
                identity.roles.as_slice()
            ),
            (
                alice.as_str(),
                "alice@acme.example",
                "acme",
                &["partner-admin".to_string()][..]
            )
        );
        assert!(identity.has_permission("reports:view"));
        assert!(!caller.is_bearer());
        assert_eq!(
            caller.session().map(|s| s.user_id.as_str()),
            Some(alice.as_str())
        );
    }
    // identify() is the two stages in one.
    let caller = auth.identify(&map, AuthMode::Session).await.unwrap();
    assert_eq!(caller.identity().email, "alice@acme.example");
    assert_eq!(Identify::now(&auth), env.clock.now());
}

#[tokio::test]
async fn sessions_end_when_idle_or_too_old() {
    let env = Env::new().await;
    let auth = env.authenticator();
    let idle = env.session_of("bob@acme.example").await;
    env.clock.advance(IDLE + 1);
    let got = auth
        .authenticate(&headers(&[env.cookie(&idle)]), AuthMode::Session)
        .await;
    assert_eq!(principal(&got), "session_idle");
    // Gone for good afterwards.
    let got = auth
        .authenticate(&headers(&[env.cookie(&idle)]), AuthMode::Session)
        .await;
    assert_eq!(principal(&got), "unknown_session");

    let bob = env.user_id("bob@acme.example").await;
    let old = env.session_of("bob@acme.example").await;
    let map = headers(&[env.cookie(&old)]);
    // Kept alive by activity, it still ends at the absolute timeout.
    let step = IDLE / 2;
    for _ in 1..ABSOLUTE / step {
        env.clock.advance(step);
        let got = auth.authenticate(&map, AuthMode::Session).await;
        assert_eq!(principal(&got), format!("session {bob}"));
    }
    env.clock.advance(step);
    let got = auth.authenticate(&map, AuthMode::Session).await;
    assert!(matches!(
        got,
        Err(AuthFailure::Session(SessionFailure::Expired))
    ));
}

#[tokio::test]
async fn a_bearer_token_comes_first_when_the_route_takes_both() {
    let env = Env::new().await;
    let auth = env.authenticator();
    let alice = env.user_id("alice@acme.example").await;
    let bob = env.user_id("bob@acme.example").await;
    let cookie = env.cookie(&env.session_of("alice@acme.example").await);
    let good = bearer(&env.token("bob@acme.example"));
    let forged = bearer(&format!("{}x", env.token("bob@acme.example")));
    let cases = [
        (
            vec![good.clone()],
            AuthMode::Bearer,
            format!("bearer {bob}"),
        ),
        (vec![good.clone()], AuthMode::Any, format!("bearer {bob}")),
        (
            vec![cookie.clone(), good.clone()],
            AuthMode::Any,
            format!("bearer {bob}"),
        ),
        (
            vec![cookie.clone(), good.clone()],
            AuthMode::Bearer,
            format!("bearer {bob}"),
        ),
        (
            vec![cookie.clone(), good.clone()],
            AuthMode::Session,
            format!("session {alice}"),
        ),
        // Bearer first means a refused token is the answer, not the session behind it.
        (
            vec![cookie.clone(), forged.clone()],
            AuthMode::Any,
            "bad_signature".into(),
        ),
        (
            vec![forged.clone()],
            AuthMode::Bearer,
            "bad_signature".into(),
        ),
        (
            vec![bearer("not.a.jwt")],
            AuthMode::Bearer,
            "malformed_token".into(),
        ),
        (
            vec![cookie.clone(), forged.clone()],
            AuthMode::Session,
            format!("session {alice}"),
        ),
    ];
    for (pairs, mode, want) in cases {
        let got = auth.authenticate(&headers(&pairs), mode).await;
        assert_eq!(principal(&got), want, "{pairs:?} {mode:?}");
    }
    // A refused token is a 401 invalid_token even for a browser.
    let failure = auth
        .authenticate(&headers(&[cookie, forged]), AuthMode::Any)
        .await
        .unwrap_err();
    let rejection = failure.rejection(true, "/", None);
    assert_eq!(rejection.status, 401);
    assert_eq!(
        rejection.challenge,
        Some(crate::admission::CHALLENGE_INVALID_TOKEN)
    );
    let caller = auth
        .identify(&headers(&[good]), AuthMode::Bearer)
        .await
        .unwrap();
    assert!(caller.is_bearer());
    assert!(caller.session().is_none());
    assert_eq!(caller.identity().email, "bob@acme.example");
}

#[tokio::test]
async fn a_user_the_directory_does_not_have_is_unknown_user() {
    let env = Env::new().await;
    let auth = env.authenticator();
    // A token naming an email nobody has: refused at authentication.
    let got = auth
        .authenticate(
            &headers(&[bearer(&env.token("nobody@acme.example"))]),
            AuthMode::Bearer,
        )
        .await;
    assert!(
        matches!(got, Err(AuthFailure::UnknownUser { bearer: true })),
        "{got:?}"
    );
    // A token naming a user id (no '@'): the id is taken as is, and resolve finds nobody.
    let principal = auth
        .authenticate(
            &headers(&[bearer(&env.token("u-nobody"))]),
            AuthMode::Bearer,
        )
        .await
        .unwrap();
    assert_eq!(principal.user_id, "u-nobody");
    let got = auth.resolve(principal).await;
    assert!(
        matches!(got, Err(AuthFailure::UnknownUser { bearer: true })),
        "{got:?}"
    );
    // A session (or an assumed identity) naming a user id the directory does not have.
    let alice = env.user_id("alice@acme.example").await;
    let live = env
        .sessions
        .create(&alice, crate::directory::Amr::PWD, Duration::from_secs(60))
        .await
        .unwrap()
        .session;
    for via in [Via::Session(live), Via::Assumed] {
        let what = format!("{via:?}");
        let got = auth
            .resolve(Principal {
                user_id: "u-gone".into(),
                via,
                strength: Default::default(),
            })
            .await;
        assert!(
            matches!(got, Err(AuthFailure::UnknownUser { bearer: false })),
            "{what}: {got:?}"
        );
        let r = got.unwrap_err().rejection(true, "/x", None);
        assert_eq!((r.status, r.reason), (302, Reason::UnknownUser));
    }
}

#[tokio::test]
async fn a_suspended_user_still_resolves_for_the_policy_to_refuse() {
    let env = Env::new().await;
    let auth = env.authenticator();
    let cookie = env.session_of("carol@acme.example").await;
    let caller: Caller = auth
        .identify(&headers(&[env.cookie(&cookie)]), AuthMode::Session)
        .await
        .unwrap();
    assert_eq!(caller.identity().status, UserStatus::Suspended);
}

/// Limits that let everything through.
struct Unlimited;

impl Limits for Unlimited {
    async fn check(&self, _limit: Limit<'_>) -> LimitVerdict {
        LimitVerdict::Allow
    }
}

#[tokio::test]
async fn admit_runs_with_the_real_authenticator() {
    let env = Env::new().await;
    let config = env.config.clone();
    let limits = RateLimits::build(&config, None, None);
    let rules = Rules::new(Arc::new(config), limits, &Metrics::new());
    let conn = Connection {
        raw_head: None,
        addr: Some("203.0.113.9".parse().unwrap()),
        tls: false,
        sni: None,
    };
    let alice = env.cookie(&env.session_of("alice@acme.example").await);
    let bob_token = bearer(&env.token("bob@acme.example"));
    let cases = [
        (vec![alice.clone()], "forward alice@acme.example"),
        // Bob's token comes first and he lacks the role.
        (vec![alice.clone(), bob_token.clone()], "403 role"),
        (vec![], "401 no_credentials"),
        (
            vec![("accept".to_string(), "text/html".to_string())],
            "302 no_credentials",
        ),
    ];
    for (pairs, want) in cases {
        let mut all: Vec<_> = pairs
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        all.push(("host", "partners.example.com"));
        let h = head("GET", "/reports", &all);
        let got = admit(&h, &conn, &rules, &env.authenticator(), &Unlimited).await;
        let got = match got {
            Ok(Admission::Forward(a)) => {
                format!("forward {}", a.caller.unwrap().identity().email)
            }
            Ok(Admission::Reserved(_)) => "reserved".into(),
            Err(r) => format!("{} {}", r.rejection.status, r.rejection.reason.as_str()),
        };
        assert_eq!(got, want, "{pairs:?}");
    }
}
