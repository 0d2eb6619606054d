//! `partnergate review --json | --csv` against an imported demo directory, and its exit
//! codes for a bad configuration and a missing database.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::common::{demo_directory, offline_config, BIN};

fn partnergate(config: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("run partnergate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn review_as_json_csv_and_text_on_the_demo_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _db) = offline_config(dir.path());
    let file = demo_directory();
    let (code, out, err) = partnergate(&config, &["directory", "import", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");

    let (code, out, err) = partnergate(&config, &["review", "--json"]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
    let emails: Vec<&str> = rows.iter().map(|r| r["email"].as_str().unwrap()).collect();
    assert_eq!(
        emails,
        [
            "alice@acme.example",
            "bob@acme.example",
            "erin@acme.example",
            "carol@brightpath.example",
            "dave@globex.example",
            "owner@northwind.example",
        ]
    );
    let user = |email: &str| rows.iter().find(|r| r["email"] == email).unwrap();
    let bob = user("bob@acme.example");
    assert_eq!(bob["org"], "acme");
    assert_eq!(bob["org_type"], "reseller");
    assert_eq!(bob["status"], "active");
    assert_eq!(bob["roles"], serde_json::json!(["partner-user"]));
    assert_eq!(bob["last_login_at"], Value::Null);
    assert!(bob["created_at"].as_i64().unwrap() > 0);
    let grants = bob["grants"].as_array().unwrap();
    assert_eq!(grants.len(), 3);
    assert_eq!(grants[2]["account"], "client-90");
    assert_eq!(grants[2]["level"], "standard");
    assert_eq!(grants[2]["expired"], true);
    assert_eq!(grants[0]["expired"], false);
    let flags = &bob["flags"];
    assert_eq!(flags["expired_grant"], true);
    assert_eq!(flags["never_logged_in"], true);
    assert_eq!(flags["inactive"], false, "just imported");
    assert_eq!(flags["admin"], false);
    assert_eq!(user("alice@acme.example")["flags"]["admin"], true);
    assert_eq!(user("owner@northwind.example")["flags"]["admin"], true);
    assert_eq!(user("dave@globex.example")["flags"]["suspended"], true);
    assert_eq!(user("erin@acme.example")["status"], "suspended");
    assert_eq!(user("erin@acme.example")["flags"]["suspended"], true);

    let (code, out, err) = partnergate(&config, &["review", "--csv"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.split("\r\n").collect();
    assert_eq!(lines.len(), 8, "header, 6 users, empty tail: {out}");
    assert_eq!(
        lines[0],
        "org,org_type,org_status,email,user_id,status,roles,grants,last_login_at,\
         last_seen_at,created_at,inactive,never_logged_in,expired_grant,admin,suspended"
    );
    let bob_line = lines[2];
    assert!(
        bob_line.starts_with("acme,reseller,active,bob@acme.example,u-"),
        "{bob_line}"
    );
    assert!(
        bob_line.contains("client-90:standard until 2026-01-31T00:00:00Z (expired)"),
        "{bob_line}"
    );
    assert!(
        bob_line.ends_with(",false,true,true,false,false"),
        "{bob_line}"
    );

    let (code, out, err) = partnergate(&config, &["review"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("ORG "), "{out}");
    assert!(out.ends_with("6 user(s)\n"), "{out}");
}

#[test]
fn review_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = partnergate(&dir.path().join("missing.toml"), &["review"]);
    assert_eq!(code, 2, "{err}");
    let (config, db) = offline_config(dir.path());
    let (code, _, err) = partnergate(&config, &["review", "--json", "--csv"]);
    assert_eq!(code, 2, "{err}");
    let (code, out, err) = partnergate(&config, &["review", "--json"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("no such database file"), "{err}");
    assert!(!db.exists(), "review must not create the database");
}
