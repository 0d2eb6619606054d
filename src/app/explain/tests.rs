#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::sync::Arc;

use http::Method;

use super::report::explain;
use super::target::{parse_method, parse_target};
use super::text::render;
use super::view::{Explanation, Who};
use crate::config::{AccountLevel, Config};
use crate::directory::{AccountGrant, Identity, OrgRef, OrgStatus, UserStatus};

const NOW: i64 = 1_800_000_000;

const ROUTES: &str = r#"
[server]
listen = "127.0.0.1:8080"
public_url = "https://partners.example.com"
rate_limit_per_ip = { per_second = 200, burst = 400 }

[upstreams.portal]
addrs = ["127.0.0.1:9000"]

[[routes]]
name = "health"
path = "/healthz"
upstream = "portal"
auth = "none"

[[routes]]
name = "admin"
host = "partners.example.com"
path = "/admin"
upstream = "portal"
allow_roles = ["partner-admin"]

[[routes]]
name = "beta"
path = "/beta"
upstream = "portal"
allow_roles = ["partner-admin"]
mode = "shadow"

[[routes]]
name = "reports"
path = "/reports"
methods = ["GET"]
upstream = "portal"
allow_permissions = ["reports:view"]
rate_limit = { key = "user", per_second = 5, burst = 10 }

[[routes]]
name = "deals"
path = "/deals"
upstream = "portal"
allow_org_types = ["reseller"]
websocket = true

[[routes]]
name = "client-edit"
path = "/clients/{account}/"
methods = ["POST"]
upstream = "portal"
account_permission = "admin"

[[routes]]
name = "clients"
path = "/clients/{account}/"
upstream = "portal"
account_permission = "view"
"#;

fn config(text: &str) -> Arc<Config> {
    Arc::new(
        Config::from_toml(Path::new("explain.toml"), text)
            .unwrap_or_else(|e| panic!("{e}"))
            .config,
    )
}

fn grant(account: &str, level: AccountLevel, expires_at: Option<i64>) -> AccountGrant {
    AccountGrant {
        account: account.into(),
        level,
        expires_at,
    }
}

/// bob: partner-user of reseller acme; view on client-42, admin on client-77, an expired
/// grant on client-90.
fn bob() -> Identity {
    Identity {
        user_id: "u-bob".into(),
        email: "bob@acme.example".into(),
        status: UserStatus::Active,
        org: OrgRef {
            id: "acme".into(),
            name: "Acme Resellers".into(),
            org_type: "reseller".into(),
            status: OrgStatus::Active,
            mfa_required: false,
        },
        roles: vec!["partner-user".into()],
        permissions: vec!["dashboard:view".into(), "reports:view".into()],
        grants: vec![
            grant("client-42", AccountLevel::View, None),
            grant("client-77", AccountLevel::Admin, None),
            grant("client-90", AccountLevel::Standard, Some(NOW - 60)),
        ],
        second_factors: 0,
    }
}

fn owner() -> Identity {
    let mut id = bob();
    id.user_id = "u-owner".into();
    id.email = "owner@northwind.example".into();
    id.org = OrgRef {
        id: "northwind".into(),
        name: "Northwind".into(),
        org_type: "owner".into(),
        status: OrgStatus::Active,
        mfa_required: false,
    };
    id.roles = vec!["owner-admin".into()];
    id.grants = Vec::new();
    id
}

fn known(id: Identity) -> Who {
    Who::Known(Box::new(id))
}

fn run(method: Method, url: &str, who: &Who) -> Explanation {
    let config = config(ROUTES);
    let target = parse_target(method, url, &config.server.public_url).unwrap();
    explain(&config, &target, who, NOW)
}

fn outcomes(e: &Explanation) -> Vec<String> {
    e.rules
        .iter()
        .map(|r| {
            let mark = if r.decisive { "!" } else { "" };
            format!("{}={}{mark}", r.rule, r.outcome)
        })
        .collect()
}

#[test]
fn targets_are_normalised_like_the_proxy_does() {
    let config = config(ROUTES);
    let public = &config.server.public_url;
    let t = parse_target(
        Method::GET,
        "https://Partners.Example.COM:8443/clients/./client-42//x?y=1#frag",
        public,
    )
    .unwrap();
    assert_eq!(
        (
            &t.method,
            t.url.as_str(),
            t.host.as_str(),
            t.path.as_str(),
            t.query.as_deref()
        ),
        (
            &Method::GET,
            "https://Partners.Example.COM:8443/clients/./client-42//x?y=1#frag",
            "partners.example.com",
            "/clients/client-42/x",
            Some("y=1"),
        )
    );
    let head = t.head(true);
    assert_eq!(head.uri, "/clients/./client-42//x?y=1");
    assert_eq!(head.headers["host"], "Partners.Example.COM:8443");
    assert_eq!(head.headers["accept"], "text/html");
    let t = parse_target(Method::GET, "/reports/%71%33", public).unwrap();
    assert_eq!(
        (t.host.as_str(), t.path.as_str()),
        ("partners.example.com", "/reports/q3")
    );
    assert_eq!(
        parse_target(Method::GET, "http://a.example", public)
            .unwrap()
            .path,
        "/"
    );

    for (bad, needle) in [
        ("/clients/a%2Fb/", "400"),
        ("/x%zz", "400"),
        ("/a b", "400"),
        ("clients/42", "absolute"),
        ("ftp://a.example/x", "absolute"),
        ("https://user:pw@a.example/x", "user information"),
        ("https://bad_host!/x", "host"),
    ] {
        let err = parse_target(Method::GET, bad, public).unwrap_err();
        assert!(err.contains(needle), "{bad}: {err}");
    }
    assert_eq!(parse_method("get").unwrap(), Method::GET);
    assert_eq!(parse_method("PROPFIND").unwrap().as_str(), "PROPFIND");
    assert!(parse_method("").is_err());
    assert!(parse_method("GE T").is_err());
}

#[test]
fn allowed_request_is_forwarded_with_both_limits() {
    let e = run(Method::GET, "/reports/q3", &known(bob()));
    assert_eq!(e.decision, "allow");
    assert_eq!((e.reason, e.decided_by, e.status), (None, None, Some(200)));
    assert_eq!(e.upstream.as_deref(), Some("portal"));
    assert_eq!(
        outcomes(&e),
        [
            "auth=pass",
            "user_status=pass",
            "org_status=pass",
            "methods=pass",
            "allow_org_types=n/a",
            "allow_roles=n/a",
            "allow_permissions=pass",
            "account_permission=n/a",
            "require_mfa=n/a",
            "max_auth_age=n/a",
        ]
    );
    let routes: Vec<_> = e
        .routes
        .iter()
        .map(|r| (r.name.as_str(), r.matched))
        .collect();
    assert_eq!(
        routes,
        [
            ("health", false),
            ("admin", false),
            ("beta", false),
            ("reports", true)
        ]
    );
    let limits: Vec<_> = e
        .rate_limits
        .iter()
        .map(|l| (l.scope, l.key, l.bucket.as_str(), l.burst, l.shared))
        .collect();
    assert_eq!(
        limits,
        [
            ("global", "ip", "per client IP (IPv6: per /64)", 400, false),
            ("route", "user", "per user: bob@acme.example", 10, false),
        ]
    );
    assert!(e.identity_used);
}

#[test]
fn every_rule_is_evaluated_and_the_first_failure_decides() {
    // bob on /admin: roles fail; the route has no other rules.
    let e = run(
        Method::GET,
        "https://partners.example.com/admin",
        &known(bob()),
    );
    assert_eq!(
        (e.decision, e.reason, e.decided_by),
        ("deny", Some("role"), Some("allow_roles"))
    );
    assert_eq!(e.status, Some(403));
    let roles = e.rules.iter().find(|r| r.rule == "allow_roles").unwrap();
    assert_eq!(
        roles.detail,
        r#"allow_roles ["partner-admin"]: user has ["partner-user"] → fail (role)"#
    );
    assert!(e.upstream.is_none());
    assert_eq!(
        e.rate_limits.len(),
        1,
        "a denied request reaches no route limit"
    );

    // A suspended org and a wrong org type: both fail, org_status (checked first) decides.
    let mut id = bob();
    id.org.status = OrgStatus::Suspended;
    id.org.org_type = "referral".into();
    let e = run(Method::GET, "/deals", &known(id));
    assert_eq!(
        (e.decision, e.reason, e.decided_by),
        ("deny", Some("org_inactive"), Some("org_status"))
    );
    assert_eq!(
        outcomes(&e),
        [
            "auth=pass",
            "user_status=pass",
            "org_status=fail!",
            "methods=n/a",
            "allow_org_types=fail",
            "allow_roles=n/a",
            "allow_permissions=n/a",
            "account_permission=n/a",
            "require_mfa=n/a",
            "max_auth_age=n/a",
        ]
    );
}

#[test]
fn account_levels_and_expired_grants() {
    let bob = known(bob());
    let e = run(Method::GET, "/clients/client-42/report", &bob);
    assert_eq!(
        (e.decision, e.route.as_ref().unwrap().name.as_str()),
        ("allow", "clients")
    );
    assert_eq!(
        e.route.as_ref().unwrap().account.as_deref(),
        Some("client-42")
    );
    let account = e
        .rules
        .iter()
        .find(|r| r.rule == "account_permission")
        .unwrap();
    assert_eq!(
        account.detail,
        "needs view on client-42: user has view → pass"
    );

    let e = run(Method::POST, "/clients/client-42/report", &bob);
    assert_eq!((e.decision, e.reason), ("deny", Some("account_grant")));
    assert_eq!(e.route.as_ref().unwrap().name, "client-edit");
    assert_eq!(
        e.rules
            .iter()
            .find(|r| r.rule == "account_permission")
            .unwrap()
            .detail,
        "needs admin on client-42: user has view → fail (account_grant)"
    );

    let e = run(Method::POST, "/clients/client-77/x", &bob);
    assert_eq!(e.decision, "allow");

    let e = run(Method::GET, "/clients/client-90/", &bob);
    assert_eq!((e.decision, e.reason), ("deny", Some("grant_expired")));
    assert!(
        e.rules
            .iter()
            .find(|r| r.rule == "account_permission")
            .unwrap()
            .detail
            .contains("expired at 2027-01-15T07:59:00Z"),
        "{}",
        e.rules
            .iter()
            .find(|r| r.rule == "account_permission")
            .unwrap()
            .detail
    );
    let grants = &e.identity.as_ref().unwrap().grants;
    assert!(grants.iter().any(|g| g.account == "client-90" && g.expired));
    assert!(grants
        .iter()
        .any(|g| g.account == "client-42" && !g.expired));

    let e = run(Method::GET, "/clients/client-99/", &bob);
    assert!(e
        .rules
        .iter()
        .find(|r| r.rule == "account_permission")
        .unwrap()
        .detail
        .contains("no grant on it"));
}

#[test]
fn shadow_mode_lets_a_shadowable_denial_through() {
    let e = run(Method::GET, "/beta/new", &known(bob()));
    assert_eq!(
        (e.decision, e.reason, e.decided_by),
        ("shadow_deny", Some("role"), Some("allow_roles"))
    );
    assert_eq!(
        (e.status, e.upstream.as_deref()),
        (Some(200), Some("portal"))
    );
    assert!(e.notes.iter().any(|n| n.contains("shadow")));

    // A suspended user is never let through, shadow or not.
    let mut id = bob();
    id.status = UserStatus::Suspended;
    let e = run(Method::GET, "/beta/new", &known(id));
    assert_eq!(
        (e.decision, e.reason, e.status),
        ("deny", Some("user_inactive"), Some(403))
    );
}

#[test]
fn method_refusal_happens_at_route_lookup() {
    let e = run(Method::DELETE, "/reports", &known(bob()));
    assert_eq!(
        (e.decision, e.reason, e.decided_by),
        ("deny", Some("method"), Some("methods"))
    );
    assert_eq!(e.status, Some(403));
    let route = e.route.as_ref().unwrap();
    assert_eq!((route.name.as_str(), route.matched), ("reports", false));
    // Every route was looked at, none matched.
    assert_eq!(e.routes.len(), 7);
    assert!(e.routes.iter().all(|r| !r.matched));
    let reports = &e.routes[3];
    assert_eq!(reports.why, "no match: DELETE not in methods [GET]");
    assert!(e.rules.iter().any(|r| r.rule == "methods" && r.decisive));
    assert_eq!(e.rules.iter().filter(|r| r.decisive).count(), 1);
}

#[test]
fn no_route_lists_every_route_with_its_reason() {
    let e = run(
        Method::GET,
        "https://other.example.com/admin/x",
        &known(bob()),
    );
    assert_eq!(
        (e.decision, e.reason, e.decided_by, e.status),
        ("deny", Some("no_route"), Some("routes"), Some(404))
    );
    assert!(e.route.is_none() && e.rules.is_empty());
    assert_eq!(e.routes.len(), 7);
    assert!(e.routes.iter().all(|r| !r.matched));
    assert_eq!(
        e.routes[0].why,
        r#"no match: path does not match prefix "/healthz""#
    );
    assert_eq!(
        e.routes[1].why,
        "no match: host is not partners.example.com"
    );
    assert!(e.identity.is_some(), "the identity is still shown");
}

#[test]
fn unknown_and_anonymous_users_are_unauthenticated() {
    let e = run(
        Method::GET,
        "/reports",
        &Who::Unknown("nobody@x.example".into()),
    );
    assert_eq!(
        (e.decision, e.reason, e.decided_by),
        ("unauthenticated", Some("unknown_user"), Some("auth"))
    );
    assert_eq!((e.status, e.browser_status), (Some(401), Some(302)));
    assert!(e.identity.is_none());
    assert_eq!(e.request.user.as_deref(), Some("nobody@x.example"));
    assert!(e.notes.iter().any(|n| n.contains("no user")));

    let e = run(Method::POST, "/deals", &Who::Anonymous);
    assert_eq!(
        (e.decision, e.reason),
        ("unauthenticated", Some("no_credentials"))
    );
    assert_eq!((e.status, e.browser_status), (Some(401), None));
    assert!(
        e.rules[0].detail.contains("no credentials"),
        "{}",
        e.rules[0].detail
    );

    // auth = none: no identity needed, none used.
    let e = run(Method::GET, "/healthz", &Who::Anonymous);
    assert_eq!(e.decision, "allow");
    let e = run(Method::GET, "/healthz", &known(bob()));
    assert_eq!(e.decision, "allow");
    assert!(!e.identity_used);
    assert!(e.notes.iter().any(|n| n.contains("auth = \"none\"")));
}

#[test]
fn owner_admins_get_no_bypass() {
    let e = run(Method::GET, "/deals", &known(owner()));
    assert!(e.identity.as_ref().unwrap().owner_admin);
    assert_eq!((e.decision, e.reason), ("deny", Some("org_type")));
    assert!(render(&e).contains("owner admin (org type = server.owner_org_type): no bypass"));
    assert!(
        !run(Method::GET, "/deals", &known(bob()))
            .identity
            .unwrap()
            .owner_admin
    );
}

#[test]
fn reserved_paths_are_served_by_the_gateway() {
    let e = run(Method::POST, "/.partnergate/login", &Who::Anonymous);
    assert!(e.reserved);
    assert!(e.routes.is_empty() && e.route.is_none() && e.rules.is_empty());
    assert_eq!((e.decision, e.status), ("allow", None));
    let scopes: Vec<_> = e.rate_limits.iter().map(|l| l.scope).collect();
    assert_eq!(scopes, ["global", "login"]);
    let e = run(Method::GET, "/.partnergate/whoami", &Who::Anonymous);
    assert_eq!(e.rate_limits.len(), 1);
    assert!(render(&e).contains("served by the gateway itself"));
}

#[test]
fn redis_makes_limits_shared() {
    let text = format!("{ROUTES}\n[redis]\nurl = \"redis://127.0.0.1:6379\"\n",);
    let config = config(&text.replace(
        "rate_limit = { key = \"user\", per_second = 5, burst = 10 }",
        "rate_limit = { key = \"org\", per_second = 0.5, burst = 10, on_redis_error = \"deny\" }",
    ));
    let target = parse_target(Method::GET, "/reports", &config.server.public_url).unwrap();
    let e = explain(&config, &target, &known(bob()), NOW);
    let route = e.rate_limits.iter().find(|l| l.scope == "route").unwrap();
    assert_eq!(
        (route.key, route.bucket.as_str(), route.shared),
        ("org", "per org: acme", true)
    );
    assert_eq!((route.per_second, route.on_redis_error), (0.5, "deny"));
    let text = render(&e);
    assert!(text.contains("0.5/s, burst 10, per org: acme; shared by every instance through Redis; if Redis cannot answer: refuse with 503"), "{text}");
    assert!(
        text.contains("global per-IP limit (server.rate_limit_per_ip): 200/s, burst 400"),
        "{text}"
    );
}

#[test]
fn text_names_the_deciding_rule() {
    let e = run(Method::GET, "/admin", &known(bob()));
    let text = render(&e);
    assert!(
        text.contains("decision: deny (reason role), decided by allow_roles → 403"),
        "{text}"
    );
    let decisive: Vec<_> = text.lines().filter(|l| l.ends_with("<= decides")).collect();
    assert_eq!(decisive.len(), 1, "{text}");
    assert!(
        decisive[0].trim_start().starts_with("allow_roles"),
        "{text}"
    );
    assert!(text.contains("=> #1  admin"), "{text}");
    assert!(
        text.contains("user bob@acme.example (id u-bob), active"),
        "{text}"
    );
    assert!(
        text.contains("grants: client-42 view; client-77 admin; client-90 standard (EXPIRED"),
        "{text}"
    );

    let text = render(&run(Method::GET, "/reports", &Who::Anonymous));
    assert!(
        text.contains(
            "decided by auth → 401 (a browser GET accepting text/html: 302 to the login page)"
        ),
        "{text}"
    );
    let text = render(&run(Method::GET, "/beta", &known(bob())));
    assert!(
        text.contains("shadow_deny (reason role), decided by allow_roles → let through anyway"),
        "{text}"
    );
    let text = render(&run(Method::GET, "/deals", &known(bob())));
    assert!(
        text.contains("WebSocket upgrades allowed (websocket = true)"),
        "{text}"
    );
    assert!(text.contains("forwarded to upstream portal"), "{text}");
}

#[test]
fn json_has_stable_field_names() {
    let e = run(Method::GET, "/clients/client-42/x?y=1", &known(bob()));
    let v = serde_json::to_value(&e).unwrap();
    let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
    let mut want = vec![
        "request",
        "reserved",
        "routes",
        "route",
        "identity",
        "identity_used",
        "rules",
        "decision",
        "reason",
        "decided_by",
        "status",
        "browser_status",
        "upstream",
        "rate_limits",
        "notes",
    ];
    want.sort_unstable();
    let mut keys = keys;
    keys.sort();
    assert_eq!(keys, want);
    assert_eq!(v["request"]["query"], "y=1");
    assert_eq!(v["route"]["account"], "client-42");
    assert_eq!(v["identity"]["org"]["type"], "reseller");
    assert_eq!(v["identity"]["grants"][2]["expired"], true);
    assert_eq!(v["rules"][7]["rule"], "account_permission");
    assert_eq!(v["rules"][7]["outcome"], "pass");
    assert_eq!(v["rate_limits"][0]["scope"], "global");
    assert_eq!(v["status"], 200);
}
