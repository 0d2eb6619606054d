//! `partnergate explain` end to end: the real binary against a real directory (SQLite
//! file and PostgreSQL schema) imported from the demo directory, and against a running
//! gateway with the same configuration, to show that explain says what the proxy does.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common::*;

/// Routes exercising every rule: roles, org types, permissions with methods and a rate
/// limit, shadow mode, client-account levels. No catch-all, so unknown paths are no_route.
const ROUTES: &str = r#"
[[routes]]
name = "health"
path = "/healthz"
upstream = "portal"
auth = "none"

[[routes]]
name = "dashboard"
path = "/dashboard"
upstream = "portal"
allow_roles = ["partner-admin", "owner-admin"]

[[routes]]
name = "deals"
path = "/deals"
upstream = "portal"
allow_org_types = ["reseller"]

[[routes]]
name = "referrals"
path = "/referrals"
upstream = "portal"
allow_org_types = ["referral"]

[[routes]]
name = "reports-beta"
path = "/reports/beta"
upstream = "portal"
allow_roles = ["partner-admin"]
mode = "shadow"

[[routes]]
name = "reports"
path = "/reports"
methods = ["GET"]
upstream = "portal"
allow_permissions = ["reports:view"]
rate_limit = { key = "user", per_second = 50, burst = 100 }

[[routes]]
name = "client-settings"
path = "/clients/{account}/settings"
upstream = "portal"
account_permission = "admin"

[[routes]]
name = "clients"
path = "/clients/{account}/"
upstream = "portal"
account_permission = "view"
"#;

const ROUTE_COUNT: usize = 8;

/// A configuration file (never served) with `ROUTES` and the demo directory imported.
struct Setup {
    _dir: tempfile::TempDir,
    config: PathBuf,
}

fn setup(directory_url: Option<&str>) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let directory = match directory_url {
        Some(url) => url.to_string(),
        None => format!("sqlite://{}", dir.path().join("partnergate.db").display()),
    };
    let text = format!(
        r#"[server]
listen = "127.0.0.1:1"
admin_listen = "127.0.0.1:2"
public_url = "https://partners.example.com"
rate_limit_per_ip = {{ per_second = 200, burst = 400 }}

[upstreams.portal]
addrs = ["127.0.0.1:9"]

[directory]
url = "{directory}"
{ROUTES}"#
    );
    let config = dir.path().join("partnergate.toml");
    std::fs::write(&config, text).unwrap();
    import(&config);
    Setup { _dir: dir, config }
}

fn import(config: &Path) {
    let out = Command::new(BIN)
        .args(["directory", "import"])
        .arg(demo_directory())
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "import: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Run `explain` with `args`: (exit code, stdout, stderr).
fn explain(config: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .arg("explain")
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `explain --json` for (user, method, url); the exit code must be 0.
fn explain_json(config: &Path, user: Option<&str>, method: &str, url: &str) -> Value {
    let mut args = vec!["--json", "--method", method, "--url", url];
    if let Some(user) = user {
        args.extend(["--user", user]);
    }
    let (code, out, err) = explain(config, &args);
    assert_eq!(code, 0, "{user:?} {method} {url}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

const BOB: &str = "bob@acme.example";
const CAROL: &str = "carol@brightpath.example";
const DAVE: &str = "dave@globex.example";
const ERIN: &str = "erin@acme.example";
const OWNER: &str = "owner@northwind.example";

/// (user, method, url, decision, reason, decided_by, status)
type Case = (
    Option<&'static str>,
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    u16,
);

const CASES: [Case; 22] = [
    (Some(BOB), "GET", "/reports", "allow", None, None, 200),
    (
        Some(BOB),
        "GET",
        "/dashboard",
        "deny",
        Some("role"),
        Some("allow_roles"),
        403,
    ),
    (
        Some(CAROL),
        "GET",
        "/deals",
        "deny",
        Some("org_type"),
        Some("allow_org_types"),
        403,
    ),
    (Some(CAROL), "GET", "/referrals", "allow", None, None, 200),
    (
        Some(BOB),
        "GET",
        "/referrals",
        "deny",
        Some("org_type"),
        Some("allow_org_types"),
        403,
    ),
    (
        Some(CAROL),
        "GET",
        "/reports",
        "deny",
        Some("permission"),
        Some("allow_permissions"),
        403,
    ),
    // bob: view on client-42, admin on client-77, an expired grant on client-90.
    (
        Some(BOB),
        "GET",
        "/clients/client-42/",
        "allow",
        None,
        None,
        200,
    ),
    (
        Some(BOB),
        "GET",
        "/clients/client-42/settings",
        "deny",
        Some("account_grant"),
        Some("account_permission"),
        403,
    ),
    (
        Some(BOB),
        "GET",
        "/clients/client-77/settings",
        "allow",
        None,
        None,
        200,
    ),
    (
        Some(BOB),
        "GET",
        "/clients/client-90/",
        "deny",
        Some("grant_expired"),
        Some("account_permission"),
        403,
    ),
    // Shadow mode lets a role denial through, but never a suspension.
    (
        Some(BOB),
        "GET",
        "/reports/beta",
        "shadow_deny",
        Some("role"),
        Some("allow_roles"),
        200,
    ),
    (
        Some(DAVE),
        "GET",
        "/reports/beta",
        "deny",
        Some("org_inactive"),
        Some("org_status"),
        403,
    ),
    (
        Some(BOB),
        "DELETE",
        "/reports",
        "deny",
        Some("method"),
        Some("methods"),
        403,
    ),
    (
        Some(BOB),
        "GET",
        "/nowhere",
        "deny",
        Some("no_route"),
        Some("routes"),
        404,
    ),
    (
        Some("nobody@nowhere.example"),
        "GET",
        "/reports",
        "unauthenticated",
        Some("unknown_user"),
        Some("auth"),
        401,
    ),
    (
        None,
        "GET",
        "/reports",
        "unauthenticated",
        Some("no_credentials"),
        Some("auth"),
        401,
    ),
    (
        Some(DAVE),
        "GET",
        "/deals",
        "deny",
        Some("org_inactive"),
        Some("org_status"),
        403,
    ),
    (
        Some(ERIN),
        "GET",
        "/deals",
        "deny",
        Some("user_inactive"),
        Some("user_status"),
        403,
    ),
    // Owner admins get no bypass.
    (
        Some(OWNER),
        "GET",
        "/deals",
        "deny",
        Some("org_type"),
        Some("allow_org_types"),
        403,
    ),
    (Some(OWNER), "GET", "/dashboard", "allow", None, None, 200),
    (None, "GET", "/healthz", "allow", None, None, 200),
    // Emails are case-insensitive; absolute URLs lose their port.
    (
        Some("Bob@ACME.example"),
        "GET",
        "https://partners.example.com:8443/clients/client-42/x?y=1",
        "allow",
        None,
        None,
        200,
    ),
];

fn check_case(config: &Path, case: &Case) -> Value {
    let (user, method, url, decision, reason, decided_by, status) = *case;
    let v = explain_json(config, user, method, url);
    let what = format!("{user:?} {method} {url}: {v:#}");
    assert_eq!(v["decision"], decision, "{what}");
    assert_eq!(v["reason"].as_str(), reason, "{what}");
    assert_eq!(v["decided_by"].as_str(), decided_by, "{what}");
    assert_eq!(v["status"], status, "{what}");
    v
}

#[test]
fn decisions_on_sqlite() {
    let s = setup(None);
    for case in &CASES {
        check_case(&s.config, case);
    }
}

#[tokio::test]
async fn decisions_on_postgres() {
    let pg = PgSchema::new().await;
    let s = setup(Some(&pg.url));
    for case in CASES.iter().filter(|c| c.0.is_some()).take(12) {
        check_case(&s.config, case);
    }
}

#[test]
fn json_shape() {
    let s = setup(None);
    let v = explain_json(&s.config, Some(BOB), "get", "/clients/client-42/notes?x=1");
    for key in [
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
    ] {
        assert!(v.get(key).is_some(), "no {key:?} in {v:#}");
    }
    assert_eq!(v["request"]["method"], "GET");
    assert_eq!(v["request"]["host"], "partners.example.com");
    assert_eq!(v["request"]["path"], "/clients/client-42/notes");
    assert_eq!(v["request"]["query"], "x=1");
    assert_eq!(v["request"]["user"], BOB);
    assert_eq!(v["route"]["name"], "clients");
    assert_eq!(v["route"]["account"], "client-42");
    assert_eq!(v["route"]["auth"], "session");
    assert_eq!(v["route"]["mode"], "enforce");
    let routes = v["routes"].as_array().unwrap();
    assert_eq!(routes.len(), ROUTE_COUNT, "every route up to the match");
    assert!(routes[..ROUTE_COUNT - 1]
        .iter()
        .all(|r| r["matched"] == false && r["why"].as_str().unwrap().starts_with("no match")));
    assert_eq!(routes[ROUTE_COUNT - 1]["matched"], true);

    let id = &v["identity"];
    assert_eq!(id["email"], BOB);
    assert_eq!(id["status"], "active");
    assert_eq!(id["org"]["id"], "acme");
    assert_eq!(id["org"]["type"], "reseller");
    assert_eq!(id["org"]["status"], "active");
    assert_eq!(id["owner_admin"], false);
    assert_eq!(id["roles"], serde_json::json!(["partner-user"]));
    assert!(id["user_id"].as_str().is_some_and(|s| !s.is_empty()));
    let grants = id["grants"].as_array().unwrap();
    let expired: Vec<_> = grants
        .iter()
        .map(|g| {
            (
                g["account"].as_str().unwrap(),
                g["expired"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        expired,
        [
            ("client-42", false),
            ("client-77", false),
            ("client-90", true)
        ]
    );
    assert_eq!(grants[2]["expires_at"], "2026-01-31T00:00:00Z");

    let rules: Vec<_> = v["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}={}",
                r["rule"].as_str().unwrap(),
                r["outcome"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        rules,
        [
            "auth=pass",
            "user_status=pass",
            "org_status=pass",
            "methods=n/a",
            "allow_org_types=n/a",
            "allow_roles=n/a",
            "allow_permissions=n/a",
            "account_permission=pass",
            "require_mfa=n/a",
            "max_auth_age=n/a",
        ]
    );
    assert_eq!(
        v["rules"][7]["detail"],
        "needs view on client-42: user has view → pass"
    );
    assert_eq!(v["upstream"], "portal");
    // The route has no limit of its own: only the global one.
    assert_eq!(v["rate_limits"].as_array().unwrap().len(), 1);
    let global = &v["rate_limits"][0];
    assert_eq!(global["scope"], "global");
    assert_eq!(global["key"], "ip");
    assert_eq!(global["per_second"], 200.0);
    assert_eq!(global["burst"], 400);
    assert_eq!(global["shared"], false);
    assert_eq!(global["on_redis_error"], "local");

    let v = explain_json(&s.config, Some(BOB), "GET", "/reports/q3");
    let route_limit = &v["rate_limits"][1];
    assert_eq!(route_limit["scope"], "route");
    assert_eq!(route_limit["key"], "user");
    assert_eq!(route_limit["bucket"], "per user: bob@acme.example");
    assert_eq!(route_limit["burst"], 100);

    // A denial: the failing rule is marked, all rules are still evaluated.
    let v = explain_json(&s.config, Some(CAROL), "GET", "/reports");
    let rules = v["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 10);
    let decisive: Vec<_> = rules.iter().filter(|r| r["decisive"] == true).collect();
    assert_eq!(decisive.len(), 1);
    assert_eq!(decisive[0]["rule"], "allow_permissions");
    assert_eq!(decisive[0]["outcome"], "fail");
    assert_eq!(decisive[0]["reason"], "permission");
    assert_eq!(v["rate_limits"].as_array().unwrap().len(), 1);

    // No route: every route listed, none matched, and why.
    let v = explain_json(&s.config, Some(BOB), "GET", "/nowhere");
    let routes = v["routes"].as_array().unwrap();
    assert_eq!(routes.len(), ROUTE_COUNT);
    assert!(routes.iter().all(|r| r["matched"] == false));
    assert_eq!(
        routes[0]["why"],
        "no match: path does not match prefix \"/healthz\""
    );
    assert!(v["route"].is_null() && v["rules"].as_array().unwrap().is_empty());

    // Unknown user: no identity.
    let v = explain_json(&s.config, Some("nobody@nowhere.example"), "GET", "/deals");
    assert!(v["identity"].is_null());
    assert_eq!(v["browser_status"], 302);

    // Owner admin: flagged, and still policy-checked.
    let v = explain_json(&s.config, Some(OWNER), "GET", "/deals");
    assert_eq!(v["identity"]["owner_admin"], true);
    assert_eq!(v["decision"], "deny");

    // Reserved path: the login limit applies to login POSTs.
    let v = explain_json(&s.config, None, "POST", "/.partnergate/login");
    assert_eq!(v["reserved"], true);
    let scopes: Vec<_> = v["rate_limits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["scope"].as_str().unwrap())
        .collect();
    assert_eq!(scopes, ["global", "login"]);
}

#[test]
fn text_names_the_deciding_rule() {
    let s = setup(None);
    let (code, out, err) = explain(
        &s.config,
        &["--user", BOB, "--method", "GET", "--url", "/dashboard"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("decision: deny (reason role), decided by allow_roles → 403"),
        "{out}"
    );
    let decisive: Vec<_> = out.lines().filter(|l| l.ends_with("<= decides")).collect();
    assert_eq!(decisive.len(), 1, "{out}");
    assert!(
        decisive[0].contains(
            r#"allow_roles ["partner-admin", "owner-admin"]: user has ["partner-user"] → fail (role)"#
        ),
        "{out}"
    );
    assert!(out.contains("=> #1  dashboard"), "{out}");
    assert!(
        out.contains("org acme (\"Acme Resellers\"), type reseller, active"),
        "{out}"
    );

    // --method defaults to GET; the owner admin is named as such.
    let (code, out, _) = explain(&s.config, &["--user", OWNER, "--url", "/deals"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("GET /deals"), "{out}");
    assert!(out.contains("owner admin"), "{out}");
    assert!(out.contains("no bypass"), "{out}");
    assert!(out.contains("decided by allow_org_types"), "{out}");

    // Expired grant and shadow mode, in words.
    let (_, out, _) = explain(&s.config, &["--user", BOB, "--url", "/clients/client-90/"]);
    assert!(
        out.contains("needs view on client-90: user's grant (standard) expired at 2026-01-31T00:00:00Z → fail (grant_expired)"),
        "{out}"
    );
    let (_, out, _) = explain(&s.config, &["--user", BOB, "--url", "/reports/beta"]);
    assert!(
        out.contains("shadow_deny (reason role), decided by allow_roles"),
        "{out}"
    );
    assert!(out.contains("let through anyway"), "{out}");

    // Anonymous: no --user at all.
    let (code, out, _) = explain(&s.config, &["--url", "/reports"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("unauthenticated (reason no_credentials), decided by auth → 401"),
        "{out}"
    );
}

#[test]
fn exit_codes() {
    let s = setup(None);
    // A target the gateway would answer with 400, and bad arguments: 2, naming the flag.
    for (args, needle) in [
        (vec!["--url", "/clients/a%2Fb/"], "--url"),
        (vec!["--url", "clients/42"], "--url"),
        (vec!["--url", "/x", "--method", "G ET"], "--method"),
        (vec!["--url", "/x", "--user", " "], "--user"),
    ] {
        let (code, out, err) = explain(&s.config, &args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(out.is_empty(), "{out}");
    }
    let (code, _, err) = explain(&s.config, &[]);
    assert_eq!(code, 2, "--url is required: {err}");

    // An invalid configuration: 2.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[server]\nlisten = \"nowhere\"\n").unwrap();
    let (code, _, err) = explain(&bad, &["--url", "/"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("server.listen"), "{err}");

    // The directory cannot be reached: 1.
    let text = std::fs::read_to_string(&s.config).unwrap();
    let url_line = text.lines().find(|l| l.starts_with("url = ")).unwrap();
    let unreachable = dir.path().join("unreachable.toml");
    std::fs::write(
        &unreachable,
        text.replace(
            url_line,
            "url = \"sqlite:///proc/no-such-dir/partnergate.db\"",
        ),
    )
    .unwrap();
    let (code, _, err) = explain(&unreachable, &["--user", BOB, "--url", "/reports"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("directory"), "{err}");

    // A denial is still a successful explain.
    let (code, _, _) = explain(&s.config, &["--user", ERIN, "--url", "/deals"]);
    assert_eq!(code, 0);
}

/// What explain predicts is what a running gateway with the same configuration does:
/// same decision and reason (access log), same status.
#[tokio::test]
async fn explain_agrees_with_the_running_gateway() {
    let portal = Portal::start().await;
    let body = format!("{}\n{ROUTES}", portal_upstream(portal.addr));
    let gw = GatewayBuilder::new(body)
        .server("rate_limit_per_ip = { per_second = 200, burst = 400 }")
        .import(demo_directory())
        .start()
        .await;
    let base = format!("http://{}", gw.http);
    let mut browsers = std::collections::HashMap::new();
    for user in [BOB, CAROL, OWNER] {
        let mut b = Browser::new(base.clone());
        assert_eq!(
            b.login(user, DEMO_PASSWORD, "/").await.status(),
            303,
            "{user}"
        );
        browsers.insert(user, b);
    }
    let anonymous = Browser::new(base.clone());
    // Users who can sign in (dave and erin cannot: suspended), and anonymous requests.
    let cases = CASES
        .iter()
        .filter(|c| c.0.is_none_or(|u| browsers.contains_key(u)))
        .filter(|c| c.2.starts_with('/'));
    let mut checked = 0;
    for &(user, method, path, ..) in cases {
        let b = user.map_or(&anonymous, |u| &browsers[u]);
        let response = b
            .client
            .request(method.parse().unwrap(), format!("{base}{path}"))
            .header("cookie", b.cookie_header())
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let request_id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_string();
        let line = gw
            .access_line(|l| l["request_id"] == request_id.as_str())
            .await;
        let predicted = explain_json(&gw.config_path, user, method, path);
        let what = format!("{user:?} {method} {path}: explain {predicted:#}\naccess log {line}");
        assert_eq!(line["decision"], predicted["decision"], "{what}");
        assert_eq!(line["reason"], predicted["reason"], "{what}");
        let route = predicted["route"]["name"].as_str().unwrap_or("none");
        assert_eq!(line["route"].as_str().unwrap_or("none"), route, "{what}");
        assert_eq!(
            u64::from(status),
            predicted["status"].as_u64().unwrap(),
            "{what}"
        );
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} cases checked");
}

/// `require_mfa` and `max_auth_age` in explain: the sign-in assumed by `--mfa` and
/// `--auth-age`, the step-up reasons, and the status a browser would get.
#[test]
fn second_factor_rules() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"[server]
listen = "127.0.0.1:1"
admin_listen = "127.0.0.1:2"
public_url = "https://partners.example.com"

[upstreams.portal]
addrs = ["127.0.0.1:9"]

[directory]
url = "sqlite://{}"

[[routes]]
name = "payouts"
path = "/payouts"
upstream = "portal"
require_mfa = true
max_auth_age = "15m"
"#,
        dir.path().join("d.db").display()
    );
    let config = dir.path().join("partnergate.toml");
    std::fs::write(&config, text).unwrap();
    import(&config);
    let url = "/payouts";
    let user = "alice@acme.example";
    let run = |extra: &[&str]| {
        let mut args = vec!["--user", user, "--url", url, "--json"];
        args.extend_from_slice(extra);
        let (code, out, err) = explain(&config, &args);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str::<Value>(&out).unwrap()
    };
    let v = run(&[]);
    assert_eq!(v["decision"], "unauthenticated", "{v}");
    assert_eq!(v["reason"], "mfa_required");
    assert_eq!(
        (v["status"].as_u64(), v["browser_status"].as_u64()),
        (Some(401), Some(302))
    );
    let mfa = v["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == "require_mfa")
        .unwrap()
        .clone();
    assert_eq!(mfa["outcome"], "fail");
    assert!(
        mfa["detail"].as_str().unwrap().contains("password only"),
        "{mfa}"
    );

    let v = run(&["--mfa"]);
    assert_eq!(v["decision"], "allow", "{v}");

    let v = run(&["--mfa", "--auth-age", "20m"]);
    assert_eq!(v["reason"], "reauth_required", "{v}");

    let (code, _, err) = explain(&config, &["--url", url, "--auth-age", "soon"]);
    assert_eq!(code, 2, "{err}");
}
