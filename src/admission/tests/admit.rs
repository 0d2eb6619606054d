//! [`admit`]: the order of the stages, driven through the pipeline's two seams, an
//! [`Identify`] that returns a fixed identity and a [`Limits`] that notes every limit it
//! is asked about and refuses the one scope a case chooses (as `partnergate explain`'s
//! `Assumed` and `Noted` do).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::executor::block_on;
use http::request::Parts;
use http::HeaderMap;

use super::{head, ip, rules, UPSTREAM};
use crate::admission::{
    admit, Admission, AuthFailure, Caller, Connection, Decision, Identify, Limit, LimitScope,
    Limits, Refused, Rules, TokenProblem, Via,
};
use crate::config::{AccountLevel, AuthMode, RateKey};
use crate::directory::{
    AccountGrant, CachedIdentity, Identity, OrgRef, OrgStatus, StoreError, Timestamp, UserStatus,
};
use crate::jwt::BearerError;
use crate::policy::{DenyReason, Verdict};
use crate::ratelimit::Verdict as LimitVerdict;

const NOW: Timestamp = 1_800_000_000;
const HOST: &str = "partners.example.com";

fn gateway() -> Rules {
    rules(&format!(
        r#"
[server]
listen = "127.0.0.1:8080"
trusted_proxies = ["10.0.0.0/8"]
max_request_header_bytes = 1024
rate_limit_per_ip = {{ per_second = 100, burst = 100 }}

[login]
rate_limit_per_ip = {{ per_second = 1, burst = 5 }}
{UPSTREAM}
[[routes]]
name = "health"
path = "/healthz"
upstream = "portal"
auth = "none"
rate_limit = {{ key = "ip", per_second = 10, burst = 10 }}

[[routes]]
name = "open"
path = "/open"
upstream = "portal"
auth = "none"

[[routes]]
name = "admin"
path = "/admin"
methods = ["GET"]
upstream = "portal"
allow_roles = ["partner-admin"]
rate_limit = {{ key = "user", per_second = 10, burst = 10 }}

[[routes]]
name = "beta"
path = "/beta"
upstream = "portal"
allow_roles = ["partner-admin"]
mode = "shadow"
rate_limit = {{ key = "org", per_second = 10, burst = 10 }}

[[routes]]
name = "deals"
path = "/deals"
upstream = "portal"
rate_limit = {{ key = "route", per_second = 10, burst = 10 }}

[[routes]]
name = "clients"
path = "/clients/{{account}}/"
upstream = "portal"
account_permission = "view"

[[routes]]
name = "ws"
path = "/ws"
upstream = "portal"
websocket = true
"#
    ))
}

fn identity(
    user: &str,
    org: &str,
    status: UserStatus,
    org_status: OrgStatus,
    role: &str,
) -> Identity {
    Identity {
        user_id: format!("u-{user}"),
        email: format!("{user}@{org}.example"),
        status,
        org: OrgRef {
            id: org.into(),
            name: org.to_uppercase(),
            org_type: "reseller".into(),
            status: org_status,
            mfa_required: false,
        },
        roles: vec![role.into()],
        permissions: vec![],
        grants: vec![
            AccountGrant {
                account: "client-42".into(),
                level: AccountLevel::View,
                expires_at: None,
            },
            AccountGrant {
                account: "client-old".into(),
                level: AccountLevel::Admin,
                expires_at: Some(NOW - 1),
            },
        ],
        second_factors: 0,
    }
}

/// An active partner admin of the active org `acme`.
fn alice() -> Identity {
    identity(
        "alice",
        "acme",
        UserStatus::Active,
        OrgStatus::Active,
        "partner-admin",
    )
}

/// An active user of `acme` without the admin role.
fn bob() -> Identity {
    identity(
        "bob",
        "acme",
        UserStatus::Active,
        OrgStatus::Active,
        "partner-user",
    )
}

/// A suspended partner admin.
fn carol() -> Identity {
    identity(
        "carol",
        "acme",
        UserStatus::Suspended,
        OrgStatus::Active,
        "partner-admin",
    )
}

/// An active partner admin of a suspended org.
fn dave() -> Identity {
    identity(
        "dave",
        "globex",
        UserStatus::Active,
        OrgStatus::Suspended,
        "partner-admin",
    )
}

/// Who the request turns out to be from.
enum Who {
    Anonymous,
    User(Identity),
    Fails(fn() -> AuthFailure),
}

/// The identity seam: what `Who` says, noting every mode it was asked for.
struct Fixed {
    who: Who,
    asked: Mutex<Vec<AuthMode>>,
}

impl Identify for Fixed {
    fn now(&self) -> Timestamp {
        NOW
    }

    async fn identify(&self, _headers: &HeaderMap, mode: AuthMode) -> Result<Caller, AuthFailure> {
        self.asked.lock().unwrap().push(mode);
        match &self.who {
            Who::Anonymous => Err(AuthFailure::NoCredentials),
            Who::Fails(failure) => Err(failure()),
            Who::User(identity) => Ok(Caller {
                via: Via::Assumed,
                entry: Arc::new(CachedIdentity::new(identity.clone(), 0)),
                strength: Default::default(),
            }),
        }
    }
}

/// The limits seam: notes `scope key @route` of every check, refuses `refuse`'s scope.
struct Counted {
    refuse: Option<(LimitScope, LimitVerdict)>,
    seen: Mutex<Vec<String>>,
}

impl Limits for Counted {
    async fn check(&self, limit: Limit<'_>) -> LimitVerdict {
        self.seen.lock().unwrap().push(format!(
            "{} {} @{}",
            limit.scope.key_label(),
            limit.key,
            limit.route
        ));
        match self.refuse {
            Some((scope, verdict)) if scope == limit.scope => verdict,
            _ => LimitVerdict::Allow,
        }
    }
}

const GLOBAL: LimitScope = LimitScope::Global;
const LOGIN: LimitScope = LimitScope::Login;
const LIMITED: LimitVerdict = LimitVerdict::Limited {
    retry_after: Duration::from_millis(1_500),
};

/// One request through `admit`.
struct Run {
    outcome: Result<Admission, Refused>,
    /// Every limit checked, in order.
    limits: Vec<String>,
    /// Every `identify` call's mode, in order.
    asked: Vec<AuthMode>,
}

fn untrusted() -> Connection<'static> {
    Connection {
        raw_head: None,
        addr: Some(ip("203.0.113.9")),
        tls: false,
        sni: None,
    }
}

fn run_on(
    rules: &Rules,
    conn: &Connection<'_>,
    head: &Parts,
    who: Who,
    refuse: Option<(LimitScope, LimitVerdict)>,
) -> Run {
    let identify = Fixed {
        who,
        asked: Mutex::default(),
    };
    let limits = Counted {
        refuse,
        seen: Mutex::default(),
    };
    let outcome = block_on(admit(head, conn, rules, &identify, &limits));
    Run {
        outcome,
        limits: limits.seen.into_inner().unwrap(),
        asked: identify.asked.into_inner().unwrap(),
    }
}

/// `head` with `Host: partners.example.com` unless the case sends its own.
fn request(method: &str, target: &str, headers: &[(&str, &str)]) -> Parts {
    let mut all = headers.to_vec();
    if !all.iter().any(|(name, _)| *name == "host") {
        all.push(("host", HOST));
    }
    head(method, target, &all)
}

fn run(
    rules: &Rules,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    who: Who,
    refuse: Option<(LimitScope, LimitVerdict)>,
) -> Run {
    run_on(
        rules,
        &untrusted(),
        &request(method, target, headers),
        who,
        refuse,
    )
}

fn verdict(v: Verdict) -> String {
    match v {
        Verdict::Allow => "allow".into(),
        Verdict::ShadowDeny(r) => format!("shadow_deny:{}", r.as_str()),
        Verdict::Deny(r) => format!("deny:{}", r.as_str()),
        Verdict::Unauthenticated => "unauthenticated".into(),
    }
}

/// `reserved <path>`, `forward <route> <verdict>` or `<status> <reason>`.
fn describe(outcome: &Result<Admission, Refused>) -> String {
    match outcome {
        Ok(Admission::Reserved(r)) => format!("reserved {}", r.path),
        Ok(Admission::Forward(a)) => {
            format!("forward {} {}", a.route.route.name(), verdict(a.verdict))
        }
        Err(r) => format!("{} {}", r.rejection.status, r.rejection.reason.as_str()),
    }
}

struct Case<'a> {
    method: &'static str,
    target: &'static str,
    headers: &'a [(&'a str, &'a str)],
    who: Who,
    refuse: Option<(LimitScope, LimitVerdict)>,
    want: &'static str,
    limits: &'static [&'static str],
    asked: &'static [AuthMode],
}

impl Default for Case<'_> {
    fn default() -> Self {
        Case {
            method: "GET",
            target: "/",
            headers: &[],
            who: Who::Anonymous,
            refuse: None,
            want: "",
            limits: &[],
            asked: &[],
        }
    }
}

const G: &str = "global ip:203.0.113.9 @none";
const L: &str = "login ip:203.0.113.9 @partnergate";
const SESSION: &[AuthMode] = &[AuthMode::Session];
const BROWSER: &[(&str, &str)] = &[("accept", "text/html")];

#[test]
fn the_stages_run_in_order_and_the_first_refusal_answers() {
    let big = "x".repeat(2_000);
    let oversized = [("x-filler", big.as_str())];
    let cases = [
        // clean comes before the global limit: a refused head is never counted.
        Case {
            target: "/a%2Fb",
            refuse: Some((GLOBAL, LIMITED)),
            want: "400 encoded_slash",
            ..Case::default()
        },
        Case {
            headers: &[("host", "bad host")],
            refuse: Some((GLOBAL, LIMITED)),
            want: "400 bad_host",
            ..Case::default()
        },
        Case {
            headers: &oversized,
            refuse: Some((GLOBAL, LIMITED)),
            want: "431 header_too_large",
            ..Case::default()
        },
        // The global limit comes before the reserved paths and before routing.
        Case {
            method: "POST",
            target: "/.partnergate/login",
            refuse: Some((GLOBAL, LIMITED)),
            want: "429 rate_limit_global",
            limits: &[G],
            ..Case::default()
        },
        Case {
            target: "/nothing",
            refuse: Some((GLOBAL, LIMITED)),
            want: "429 rate_limit_global",
            limits: &[G],
            ..Case::default()
        },
        Case {
            method: "POST",
            target: "/admin",
            refuse: Some((GLOBAL, LIMITED)),
            want: "429 rate_limit_global",
            limits: &[G],
            ..Case::default()
        },
        Case {
            target: "/healthz",
            refuse: Some((GLOBAL, LimitVerdict::Unavailable)),
            want: "503 rate_limit_unavailable",
            limits: &[G],
            ..Case::default()
        },
        // Reserved paths: the gateway's own; the login limit only on the public forms' POSTs.
        Case {
            target: "/.partnergate/login",
            refuse: Some((LOGIN, LIMITED)),
            want: "reserved /.partnergate/login",
            limits: &[G],
            ..Case::default()
        },
        Case {
            method: "POST",
            target: "/.partnergate/login",
            refuse: Some((LOGIN, LIMITED)),
            want: "429 rate_limit_login",
            limits: &[G, L],
            ..Case::default()
        },
        Case {
            method: "POST",
            target: "/.partnergate/register",
            refuse: Some((LOGIN, LIMITED)),
            want: "429 rate_limit_login",
            limits: &[G, L],
            ..Case::default()
        },
        Case {
            method: "POST",
            target: "/.partnergate/invite/abc123",
            refuse: Some((LOGIN, LIMITED)),
            want: "429 rate_limit_login",
            limits: &[G, L],
            ..Case::default()
        },
        Case {
            method: "POST",
            target: "/x/../.partnergate/./login",
            refuse: Some((LOGIN, LIMITED)),
            want: "429 rate_limit_login",
            limits: &[G, L],
            ..Case::default()
        },
        Case {
            method: "POST",
            target: "/.partnergate/login",
            refuse: Some((LOGIN, LimitVerdict::Unavailable)),
            want: "503 rate_limit_unavailable",
            limits: &[G, L],
            ..Case::default()
        },
        Case {
            method: "POST",
            target: "/.partnergate/login",
            who: Who::User(alice()),
            want: "reserved /.partnergate/login",
            limits: &[G, L],
            ..Case::default()
        },
        Case {
            method: "POST",
            target: "/.partnergate/logout",
            refuse: Some((LOGIN, LIMITED)),
            want: "reserved /.partnergate/logout",
            limits: &[G],
            ..Case::default()
        },
        Case {
            method: "POST",
            target: "/.partnergate/api/users",
            refuse: Some((LOGIN, LIMITED)),
            want: "reserved /.partnergate/api/users",
            limits: &[G],
            ..Case::default()
        },
        Case {
            target: "/.partnergate",
            want: "reserved /.partnergate",
            limits: &[G],
            ..Case::default()
        },
        Case {
            target: "/.partnergateway",
            want: "404 no_route",
            limits: &[G],
            ..Case::default()
        },
        // Routing comes before authentication: no credentials needed to be told `method`.
        Case {
            method: "POST",
            target: "/admin",
            want: "403 method",
            limits: &[G],
            ..Case::default()
        },
        Case {
            method: "POST",
            target: "/admin",
            who: Who::User(alice()),
            want: "403 method",
            limits: &[G],
            ..Case::default()
        },
        Case {
            target: "/admin",
            headers: &[("upgrade", "websocket")],
            who: Who::User(alice()),
            want: "403 websocket_not_allowed",
            limits: &[G],
            ..Case::default()
        },
        // Authentication, on routes that need it.
        Case {
            target: "/admin",
            want: "401 no_credentials",
            limits: &[G],
            asked: SESSION,
            ..Case::default()
        },
        Case {
            target: "/admin?x=1",
            headers: BROWSER,
            want: "302 no_credentials",
            limits: &[G],
            asked: SESSION,
            ..Case::default()
        },
        Case {
            target: "/admin",
            headers: BROWSER,
            who: Who::Fails(|| AuthFailure::Token(TokenProblem::from(&BearerError::BadSignature))),
            want: "401 bad_signature",
            limits: &[G],
            asked: SESSION,
            ..Case::default()
        },
        Case {
            target: "/admin",
            who: Who::Fails(|| AuthFailure::Unavailable(StoreError::Unavailable("down".into()))),
            want: "503 directory_unavailable",
            limits: &[G],
            asked: SESSION,
            ..Case::default()
        },
        // auth = "none": the identity is never asked for, even when there would be one.
        Case {
            target: "/healthz",
            want: "forward health allow",
            limits: &[G, "ip ip:203.0.113.9 @health"],
            ..Case::default()
        },
        Case {
            target: "/healthz",
            who: Who::User(alice()),
            want: "forward health allow",
            limits: &[G, "ip ip:203.0.113.9 @health"],
            ..Case::default()
        },
        Case {
            target: "/healthz",
            refuse: Some((LimitScope::Route(RateKey::Ip), LIMITED)),
            want: "429 rate_limit",
            limits: &[G, "ip ip:203.0.113.9 @health"],
            ..Case::default()
        },
        Case {
            target: "/open",
            want: "forward open allow",
            limits: &[G],
            ..Case::default()
        },
        // The policy, then the route limit: a denied request is never counted.
        Case {
            target: "/admin",
            who: Who::User(alice()),
            want: "forward admin allow",
            limits: &[G, "user id:u-alice @admin"],
            asked: SESSION,
            ..Case::default()
        },
        Case {
            target: "/admin",
            who: Who::User(alice()),
            refuse: Some((LimitScope::Route(RateKey::User), LIMITED)),
            want: "429 rate_limit",
            limits: &[G, "user id:u-alice @admin"],
            asked: SESSION,
            ..Case::default()
        },
        Case {
            target: "/admin",
            who: Who::User(bob()),
            refuse: Some((LimitScope::Route(RateKey::User), LIMITED)),
            want: "403 role",
            limits: &[G],
            asked: SESSION,
            ..Case::default()
        },
        Case {
            target: "/admin",
            who: Who::User(carol()),
            want: "403 user_inactive",
            limits: &[G],
            asked: SESSION,
            ..Case::default()
        },
        // Shadow mode lets a rule's denial through, never a suspension.
        Case {
            target: "/beta",
            who: Who::User(carol()),
            want: "403 user_inactive",
            limits: &[G],
            asked: SESSION,
            ..Case::default()
        },
        Case {
            target: "/beta",
            who: Who::User(dave()),
            want: "403 org_inactive",
            limits: &[G],
            asked: SESSION,
            ..Case::default()
        },
        Case {
            target: "/beta",
            who: Who::User(bob()),
            want: "forward beta shadow_deny:role",
            limits: &[G, "org id:acme @beta"],
            asked: SESSION,
            ..Case::default()
        },
        Case {
            target: "/beta",
            who: Who::User(bob()),
            refuse: Some((LimitScope::Route(RateKey::Org), LIMITED)),
            want: "429 rate_limit",
            limits: &[G, "org id:acme @beta"],
            asked: SESSION,
            ..Case::default()
        },
        Case {
            target: "/beta",
            who: Who::User(alice()),
            want: "forward beta allow",
            limits: &[G, "org id:acme @beta"],
            asked: SESSION,
            ..Case::default()
        },
        Case {
            target: "/beta",
            want: "401 no_credentials",
            limits: &[G],
            asked: SESSION,
            ..Case::default()
        },
        Case {
            target: "/deals",
            who: Who::User(bob()),
            want: "forward deals allow",
            limits: &[G, "route all @deals"],
            asked: SESSION,
            ..Case::default()
        },
        // `{account}` reaches the policy.
        Case {
            target: "/clients/client-42/x",
            who: Who::User(alice()),
            want: "forward clients allow",
            limits: &[G],
            asked: SESSION,
            ..Case::default()
        },
        Case {
            target: "/clients/client-9/",
            who: Who::User(alice()),
            want: "403 account_grant",
            limits: &[G],
            asked: SESSION,
            ..Case::default()
        },
        Case {
            target: "/clients/client-old/",
            who: Who::User(alice()),
            want: "403 grant_expired",
            limits: &[G],
            asked: SESSION,
            ..Case::default()
        },
        Case {
            target: "/ws",
            headers: &[("upgrade", "websocket")],
            who: Who::User(alice()),
            want: "forward ws allow",
            limits: &[G],
            asked: SESSION,
            ..Case::default()
        },
    ];
    let rules = gateway();
    for case in cases {
        let what = format!("{} {} {:?}", case.method, case.target, case.headers);
        let got = run(
            &rules,
            case.method,
            case.target,
            case.headers,
            case.who,
            case.refuse,
        );
        assert_eq!(describe(&got.outcome), case.want, "{what}");
        assert_eq!(got.limits, case.limits, "limits of {what}");
        assert_eq!(got.asked, case.asked, "identify of {what}");
    }
}

#[test]
fn refused_carries_what_was_known_at_the_refusal() {
    let rules = gateway();
    let limited = |scope| Some((scope, LIMITED));
    // (method, target, who, refuse, request path, route, caller)
    let cases = [
        ("GET", "/a%2Fb", Who::Anonymous, None, None, None, None),
        (
            "GET",
            "/x/../nothing",
            Who::Anonymous,
            limited(GLOBAL),
            Some("/nothing"),
            None,
            None,
        ),
        (
            "POST",
            "/.partnergate/login",
            Who::Anonymous,
            limited(LOGIN),
            Some("/.partnergate/login"),
            None,
            None,
        ),
        (
            "GET",
            "/nothing",
            Who::Anonymous,
            None,
            Some("/nothing"),
            None,
            None,
        ),
        (
            "POST",
            "/admin",
            Who::User(alice()),
            None,
            Some("/admin"),
            Some("admin"),
            None,
        ),
        (
            "GET",
            "/admin",
            Who::Anonymous,
            None,
            Some("/admin"),
            Some("admin"),
            None,
        ),
        (
            "GET",
            "/admin",
            Who::User(bob()),
            None,
            Some("/admin"),
            Some("admin"),
            Some("u-bob"),
        ),
        (
            "GET",
            "/beta",
            Who::User(carol()),
            None,
            Some("/beta"),
            Some("beta"),
            Some("u-carol"),
        ),
        (
            "GET",
            "/admin",
            Who::User(alice()),
            limited(LimitScope::Route(RateKey::User)),
            Some("/admin"),
            Some("admin"),
            Some("u-alice"),
        ),
        (
            "GET",
            "/healthz",
            Who::Anonymous,
            limited(LimitScope::Route(RateKey::Ip)),
            Some("/healthz"),
            Some("health"),
            None,
        ),
    ];
    for (method, target, who, refuse, path, route, caller) in cases {
        let got = run(&rules, method, target, &[], who, refuse);
        let Err(refused) = got.outcome else {
            panic!("{method} {target} was admitted");
        };
        let what = format!("{method} {target}: {}", refused.rejection.reason.as_str());
        assert_eq!(
            refused.request.as_ref().map(|r| r.path.as_str()),
            path,
            "{what}"
        );
        assert_eq!(refused.route.as_ref().map(|r| r.name()), route, "{what}");
        assert_eq!(
            refused
                .caller
                .as_ref()
                .map(|c| c.identity().user_id.as_str()),
            caller,
            "{what}"
        );
        assert_eq!(refused.peer.client_ip, Some(ip("203.0.113.9")), "{what}");
        if let Some(request) = &refused.request {
            assert_eq!(request.peer, refused.peer, "{what}");
        }
    }
}

#[test]
fn refused_names_its_policy_denial() {
    let rules = gateway();
    let cases = [
        (
            "POST",
            "/admin",
            Who::Anonymous,
            None,
            Some(DenyReason::Method),
        ),
        (
            "GET",
            "/nothing",
            Who::Anonymous,
            None,
            Some(DenyReason::NoRoute),
        ),
        (
            "GET",
            "/admin",
            Who::User(bob()),
            None,
            Some(DenyReason::Role),
        ),
        (
            "GET",
            "/beta",
            Who::User(dave()),
            None,
            Some(DenyReason::OrgInactive),
        ),
        ("GET", "/admin", Who::Anonymous, None, None),
        ("GET", "/a%00", Who::Anonymous, None, None),
        (
            "GET",
            "/deals",
            Who::User(bob()),
            Some((LimitScope::Route(RateKey::Route), LIMITED)),
            None,
        ),
    ];
    for (method, target, who, refuse, want) in cases {
        let Err(refused) = run(&rules, method, target, &[], who, refuse).outcome else {
            panic!("{method} {target} was admitted");
        };
        assert_eq!(refused.denial(), want, "{method} {target}");
    }
}

#[test]
fn limits_are_keyed_by_client_ip_user_id_org_id_or_the_route() {
    let rules = gateway();
    let behind_proxy = Connection {
        raw_head: None,
        addr: Some(ip("10.0.0.1")),
        tls: false,
        sni: None,
    };
    let xff: &[(&str, &str)] = &[("x-forwarded-for", "6.6.6.6, 198.51.100.7")];
    let cases = [
        (
            "GET",
            "/healthz",
            Who::Anonymous,
            &["global ip:198.51.100.7 @none", "ip ip:198.51.100.7 @health"][..],
        ),
        (
            "POST",
            "/.partnergate/login",
            Who::Anonymous,
            &[
                "global ip:198.51.100.7 @none",
                "login ip:198.51.100.7 @partnergate",
            ][..],
        ),
        (
            "GET",
            "/admin",
            Who::User(alice()),
            &["global ip:198.51.100.7 @none", "user id:u-alice @admin"][..],
        ),
        (
            "GET",
            "/beta",
            Who::User(dave_active_org("initech")),
            &["global ip:198.51.100.7 @none", "org id:initech @beta"][..],
        ),
        (
            "GET",
            "/deals",
            Who::User(bob()),
            &["global ip:198.51.100.7 @none", "route all @deals"][..],
        ),
    ];
    for (method, target, who, want) in cases {
        let got = run_on(
            &rules,
            &behind_proxy,
            &request(method, target, xff),
            who,
            None,
        );
        assert!(
            got.outcome.is_ok(),
            "{method} {target}: {}",
            describe(&got.outcome)
        );
        assert_eq!(got.limits, want, "{method} {target}");
    }
}

/// A partner admin of an active org other than `acme`.
fn dave_active_org(org: &str) -> Identity {
    identity(
        "dave",
        org,
        UserStatus::Active,
        OrgStatus::Active,
        "partner-admin",
    )
}

#[test]
fn without_a_client_address_no_ip_limit_applies() {
    let rules = gateway();
    let cases = [
        ("GET", "/healthz", Who::Anonymous, &[][..]),
        ("POST", "/.partnergate/login", Who::Anonymous, &[][..]),
        (
            "GET",
            "/admin",
            Who::User(alice()),
            &["user id:u-alice @admin"][..],
        ),
    ];
    for (method, target, who, want) in cases {
        let refuse_all_ip = Some((GLOBAL, LIMITED));
        let got = run_on(
            &rules,
            &Connection::default(),
            &request(method, target, &[]),
            who,
            refuse_all_ip,
        );
        assert!(
            got.outcome.is_ok(),
            "{method} {target}: {}",
            describe(&got.outcome)
        );
        assert_eq!(got.limits, want, "{method} {target}");
    }
}

#[test]
fn a_limit_answers_with_retry_after() {
    let rules = gateway();
    let cases = [
        (GLOBAL, LIMITED, 429, Some(2), Decision::RateLimited),
        (
            GLOBAL,
            LimitVerdict::Limited {
                retry_after: Duration::ZERO,
            },
            429,
            Some(1),
            Decision::RateLimited,
        ),
        (
            LimitScope::Route(RateKey::Route),
            LimitVerdict::Limited {
                retry_after: Duration::from_secs(30),
            },
            429,
            Some(30),
            Decision::RateLimited,
        ),
        (
            LimitScope::Route(RateKey::Route),
            LimitVerdict::Unavailable,
            503,
            Some(1),
            Decision::Error,
        ),
    ];
    for (scope, verdict, status, retry_after, decision) in cases {
        let got = run(
            &rules,
            "GET",
            "/deals",
            &[],
            Who::User(bob()),
            Some((scope, verdict)),
        );
        let Err(refused) = got.outcome else {
            panic!("{scope:?} {verdict:?} let the request through");
        };
        let r = &refused.rejection;
        assert_eq!(
            (r.status, r.retry_after, r.decision),
            (status, retry_after, decision),
            "{scope:?} {verdict:?}"
        );
        let header = r.headers().find(|(n, _)| *n == "retry-after");
        assert_eq!(
            header.map(|(_, v)| v.into_owned()),
            retry_after.map(|s| s.to_string())
        );
    }
}

#[test]
fn an_unauthenticated_browser_is_sent_to_the_login_page_with_its_target() {
    let rules = gateway();
    let got = run(
        &rules,
        "GET",
        "/admin/./x?tab=a%20b",
        BROWSER,
        Who::Anonymous,
        None,
    );
    let Err(refused) = got.outcome else {
        panic!("an anonymous request was admitted");
    };
    let r = &refused.rejection;
    assert_eq!(r.status, 302);
    assert_eq!(
        r.location.as_deref(),
        Some("/.partnergate/login?rd=/admin/x%3Ftab%3Da%2520b")
    );
    assert!(!r.has_body());
    // The same request from a script gets the challenge.
    let got = run(
        &rules,
        "GET",
        "/admin/./x?tab=a%20b",
        &[],
        Who::Anonymous,
        None,
    );
    let Err(refused) = got.outcome else {
        panic!("an anonymous request was admitted");
    };
    assert_eq!(refused.rejection.status, 401);
    assert_eq!(
        refused.rejection.challenge,
        Some(crate::admission::CHALLENGE)
    );
}

#[test]
fn an_admitted_request_carries_the_clean_request_route_caller_and_verdict() {
    let rules = gateway();
    let got = run(
        &rules,
        "GET",
        "/clients/client-42/a/../b?x=1",
        &[],
        Who::User(alice()),
        None,
    );
    let Ok(Admission::Forward(a)) = got.outcome else {
        panic!("{}", describe(&got.outcome));
    };
    assert_eq!(
        (
            a.request.host.as_str(),
            a.request.path.as_str(),
            a.request.query.as_deref()
        ),
        (HOST, "/clients/client-42/b", Some("x=1"))
    );
    assert_eq!(a.route.route.name(), "clients");
    assert_eq!(a.route.account.as_deref(), Some("client-42"));
    let caller = a.caller.as_ref().unwrap();
    assert_eq!(caller.identity().user_id, "u-alice");
    assert!(matches!(caller.via, Via::Assumed));
    assert_eq!((a.verdict, a.decision()), (Verdict::Allow, Decision::Allow));

    let got = run(&rules, "GET", "/beta", &[], Who::User(bob()), None);
    let Ok(Admission::Forward(a)) = got.outcome else {
        panic!("{}", describe(&got.outcome));
    };
    assert_eq!(
        (a.verdict, a.decision()),
        (Verdict::ShadowDeny(DenyReason::Role), Decision::ShadowDeny)
    );
    assert!(a.verdict.lets_through());

    let got = run(&rules, "GET", "/healthz", &[], Who::User(alice()), None);
    let Ok(Admission::Forward(a)) = got.outcome else {
        panic!("{}", describe(&got.outcome));
    };
    assert!(a.caller.is_none(), "auth = \"none\" has no caller");
    assert_eq!(a.decision(), Decision::Allow);
}
