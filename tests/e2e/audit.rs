//! The audit log: every login attempt leaves exactly one record (each result path, on
//! SQLite and PostgreSQL), and `partnergate audit verify` against a running gateway's
//! directory passes, then names the record altered behind its back.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sqlx::Connection;

use partnergate::config::LoginConfig;
use partnergate::directory::{AuditFilter, AuditOutcome, AuditRecord, Store};
use partnergate::password::PasswordHasher;
use partnergate::session::{LoginAttempt, LoginError, LoginResult, LoginService};

use crate::common::*;
use crate::identity_clock::{login_config, sessions_on};

const WRONG: &str = "wrong-password-1";

/// A login service on a fresh demo directory, and the audit records seen so far.
struct Logins {
    login: Arc<LoginService>,
    store: Arc<dyn Store>,
    seen: i64,
}

impl Logins {
    async fn on(url: &str, hasher: PasswordHasher) -> Logins {
        let (_clock, sessions) = sessions_on(url).await;
        let store = sessions.directory().store().clone();
        let login = Arc::new(LoginService::new(sessions, Arc::new(hasher)));
        Logins {
            login,
            store,
            seen: 0,
        }
    }

    async fn attempt(
        &self,
        email: &str,
        password: &str,
        ip: &str,
        config: &LoginConfig,
    ) -> LoginResult {
        let outcome = self
            .login
            .attempt(
                attempt(email, password, ip),
                config,
                Duration::from_secs(3600),
            )
            .await;
        outcome.unwrap().result
    }

    /// The one record written since the last call.
    async fn only_new_record(&mut self) -> AuditRecord {
        let filter = AuditFilter {
            after_seq: Some(self.seen),
            ..AuditFilter::default()
        };
        let mut new = self.store.audit_list(&filter).await.unwrap();
        assert_eq!(new.len(), 1, "{new:#?}");
        let record = new.pop().unwrap();
        self.seen = record.seq;
        record
    }

    /// Attempt a login and check its one record: `(action, outcome, reason)`.
    async fn check(
        &mut self,
        (email, password, ip): (&str, &str, &str),
        config: &LoginConfig,
        result: LoginResult,
        record: (&str, AuditOutcome, Option<&str>),
    ) -> AuditRecord {
        assert_eq!(
            self.attempt(email, password, ip, config).await,
            result,
            "{email}"
        );
        let found = self.only_new_record().await;
        let e = &found.entry;
        assert_eq!(
            (e.action.as_str(), e.outcome, e.reason.as_deref()),
            record,
            "{email} from {ip}"
        );
        assert_eq!(e.ip.as_deref(), Some(ip));
        assert_eq!(e.request_id.as_deref(), Some("req-audit"));
        let text = serde_json::to_string(&found).unwrap();
        assert!(!text.contains(password), "the password is in {text}");
        found
    }
}

fn attempt(email: &str, password: &str, ip: &str) -> LoginAttempt {
    LoginAttempt {
        email: email.into(),
        password: password.into(),
        client_ip: ip.parse().unwrap(),
        request_id: "req-audit".into(),
    }
}

async fn every_login_path_is_audited_once(url: &str) {
    use AuditOutcome::{Denied, Ok};
    use LoginResult::*;
    let mut l = Logins::on(url, PasswordHasher::new(2, 8)).await;
    let config = login_config();
    let ip = "192.0.2.20";

    let r = l
        .check(
            ("alice@acme.example", DEMO_PASSWORD, ip),
            &config,
            Success,
            ("login.success", Ok, None),
        )
        .await;
    assert!(r.entry.actor.starts_with("u-"), "{r:?}");
    assert_eq!(r.entry.actor_email.as_deref(), Some("alice@acme.example"));
    assert_eq!(r.entry.org_id.as_deref(), Some("acme"));

    let bad = ("login.failure", Denied, Some("bad_credentials"));
    let r = l
        .check(
            ("alice@acme.example", WRONG, ip),
            &config,
            BadCredentials,
            bad,
        )
        .await;
    assert_eq!(r.entry.actor, "anonymous");
    assert_eq!(r.entry.after, Some(json!({"failed_logins": 1})));

    let unknown = ("login.failure", Denied, Some("unknown_user"));
    let r = l
        .check(
            ("Nobody@Acme.example", WRONG, ip),
            &config,
            UnknownUser,
            unknown,
        )
        .await;
    assert_eq!(r.entry.actor_email.as_deref(), Some("nobody@acme.example"));
    assert_eq!(r.entry.target, None);

    let suspended = ("login.failure", Denied, Some("suspended"));
    l.check(
        ("erin@acme.example", DEMO_PASSWORD, ip),
        &config,
        Suspended,
        suspended,
    )
    .await;
    let r = l
        .check(
            ("dave@globex.example", DEMO_PASSWORD, ip),
            &config,
            Suspended,
            suspended,
        )
        .await;
    assert_eq!(r.entry.org_id.as_deref(), Some("globex"));

    // max_failures = 3: the third failure locks bob, and says so.
    let bob = |password| ("bob@acme.example", password, ip);
    l.check(bob(WRONG), &config, BadCredentials, bad).await;
    l.check(bob(WRONG), &config, BadCredentials, bad).await;
    let r = l.check(bob(WRONG), &config, BadCredentials, bad).await;
    assert_eq!(r.entry.after.as_ref().unwrap()["failed_logins"], 0);
    assert!(
        r.entry.after.as_ref().unwrap()["locked_until"].is_i64(),
        "{r:?}"
    );
    let locked = ("login.failure", Denied, Some("locked"));
    l.check(bob(DEMO_PASSWORD), &config, Locked, locked).await;
    let r = l.check(bob(WRONG), &config, Locked, locked).await;
    assert_eq!(
        r.entry.after, None,
        "a locked account is not counted further"
    );

    // The client IP locked (max_failures_per_ip = 2), for a right and a wrong password.
    let ip_config = LoginConfig {
        max_failures_per_ip: 2,
        ..login_config()
    };
    let other = "192.0.2.99";
    l.check(
        ("x@acme.example", WRONG, other),
        &ip_config,
        UnknownUser,
        unknown,
    )
    .await;
    l.check(
        ("x@acme.example", WRONG, other),
        &ip_config,
        UnknownUser,
        unknown,
    )
    .await;
    l.check(("x@acme.example", WRONG, other), &ip_config, Locked, locked)
        .await;
    let alice = |password| ("alice@acme.example", password, other);
    l.check(alice(DEMO_PASSWORD), &ip_config, Locked, locked)
        .await;
    l.check(alice(WRONG), &ip_config, Locked, locked).await;

    // A form refused before its credentials were looked at.
    l.login
        .refuse(attempt("alice@acme.example", DEMO_PASSWORD, ip), "csrf")
        .await
        .unwrap();
    let r = l.only_new_record().await;
    assert_eq!(
        (r.entry.action.as_str(), r.entry.reason.as_deref()),
        ("login.failure", Some("csrf"))
    );

    let v = l.store.audit_verify().await.unwrap();
    assert!(v.is_intact(), "{v:?}");
    assert_eq!(v.records, l.seen as u64);
}

#[tokio::test]
async fn every_login_path_is_audited_once_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    every_login_path_is_audited_once(&format!("sqlite://{}", dir.path().join("d.db").display()))
        .await;
}

#[tokio::test]
async fn every_login_path_is_audited_once_on_postgres() {
    let schema = PgSchema::new().await;
    every_login_path_is_audited_once(&schema.url).await;
}

/// Attempts turned away because password hashing is saturated are audited too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn saturated_logins_are_audited_as_failed() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("d.db").display());
    // One hashing thread, no queue: concurrent attempts beyond the first are refused.
    let l = Logins::on(&url, PasswordHasher::new(1, 0)).await;
    let attempts: Vec<_> = (0..8)
        .map(|_| {
            let login = l.login.clone();
            tokio::spawn(async move {
                let a = attempt("alice@acme.example", WRONG, "192.0.2.30");
                login
                    .attempt(a, &login_config(), Duration::from_secs(60))
                    .await
            })
        })
        .collect();
    let mut busy = 0;
    for a in attempts {
        match a.await.unwrap() {
            Ok(_) => {}
            Err(LoginError::Busy) => busy += 1,
            Err(e) => panic!("{e}"),
        }
    }
    let all = l.store.audit_list(&AuditFilter::default()).await.unwrap();
    assert_eq!(all.len(), 8, "one record per attempt");
    let failed = all
        .iter()
        .filter(|r| {
            r.entry.outcome == AuditOutcome::Failed
                && r.entry.reason.as_deref() == Some("login_busy")
        })
        .count();
    assert_eq!(failed, busy);
}

fn gateway_body(portal: std::net::SocketAddr, directory: &str) -> String {
    format!(
        r#"{}
[directory]
url = "{directory}"

[[routes]]
name = "portal"
path = "/"
upstream = "portal"
auth = "session"
"#,
        portal_upstream(portal)
    )
}

fn audit_verify(config: &std::path::Path, json: bool) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(["audit", "verify", "--config"]).arg(config);
    if json {
        cmd.arg("--json");
    }
    let out = cmd.output().expect("run audit verify");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Two logins through the form, verify passes; one record altered, verify names it.
async fn verify_a_running_gateways_log(directory: &str, alter: impl FnOnce(&str)) {
    let portal = Portal::start().await;
    let gw = GatewayBuilder::new(gateway_body(portal.addr, directory))
        .import(demo_directory())
        .start()
        .await;
    let mut b = Browser::new(format!("http://{}", gw.http));
    assert_eq!(
        b.login("bob@acme.example", DEMO_PASSWORD, "/")
            .await
            .status(),
        303
    );
    let mut b = Browser::new(format!("http://{}", gw.http));
    assert_eq!(b.login("bob@acme.example", WRONG, "/").await.status(), 401);

    let (code, out, err) = audit_verify(&gw.config_path, false);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.trim(), "ok: 2 records, head seq 2");
    let (code, out, _) = audit_verify(&gw.config_path, true);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v,
        json!({"ok": true, "records": 2, "head_seq": 2, "first_problem": null})
    );

    alter(r#"UPDATE audit_log SET reason = 'success' WHERE seq = 2"#);
    let (code, out, err) = audit_verify(&gw.config_path, false);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(
        out.trim(),
        "broken at seq 2: hash does not match its contents (edited) (2 records, head seq 2)"
    );
    let (code, out, _) = audit_verify(&gw.config_path, true);
    assert_eq!(code, 1);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["first_problem"]["seq"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_passes_then_names_an_altered_record_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dir.db");
    let url = format!("sqlite://{}", file.display());
    verify_a_running_gateways_log(&url, |sql| {
        let out = Command::new("sqlite3").arg(&file).arg(sql).output();
        match out {
            Ok(out) => assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            ),
            // No sqlite3 command here: the same change through sqlx.
            Err(_) => run_sql(&url, sql),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_passes_then_names_an_altered_record_on_postgres() {
    let schema = PgSchema::new().await;
    let url = schema.url.clone();
    verify_a_running_gateways_log(&schema.url, |sql| run_sql(&url, sql)).await;
}

/// One statement on the database at `url`, on a runtime of its own.
fn run_sql(url: &str, sql: &str) {
    let (url, sql) = (url.to_string(), sql.to_string());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            if url.starts_with("sqlite:") {
                let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
                sqlx::raw_sql(&sql).execute(&mut conn).await.unwrap();
            } else {
                let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
                sqlx::raw_sql(&sql).execute(&mut conn).await.unwrap();
            }
        });
    })
    .join()
    .unwrap();
}

#[test]
fn verify_exit_codes_for_config_and_missing_database() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = audit_verify(&dir.path().join("missing.toml"), false);
    assert_eq!(code, 2, "{err}");

    let (config, db) = offline_config(dir.path());
    let (code, out, err) = audit_verify(&config, false);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("no such database file"), "{err}");
    assert!(!db.exists(), "verify must not create the database");
}
