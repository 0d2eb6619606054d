//! `partnergate check` and the other commands' exit codes.

use std::process::Command;

use crate::common::BIN;

fn check(config: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, config).expect("write");
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .expect("run check");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn broken_config_lists_every_problem_and_exits_2() {
    let (code, _out, err) = check(
        r#"
[server]
listen = "nowhere"
tls_listen = "127.0.0.1:1"
tls_cert_file = "missing.crt"
tls_key_file = "missing.key"
shutdown_grace = "a while"

[upstreams.portal]
addrs = ["127.0.0.1:9000"]
read_timeout = "-3s"

[[routes]]
name = "r1"
path = "no-slash"
upstream = "ghost"
surprise = true

[[routes]]
name = "r2"
path = "/x"
upstream = "portal"
mode = "sometimes"
"#,
    );
    assert_eq!(code, 2, "{err}");
    for needle in [
        "server.listen",
        "server.shutdown_grace",
        "upstreams.portal.read_timeout",
        "routes[0]",
        "surprise",
        "routes[1] (r2).mode",
        "bad.toml",
    ] {
        assert!(err.contains(needle), "stderr lacks {needle:?}:\n{err}");
    }
    assert!(
        err.lines().filter(|l| l.starts_with("error:")).count() >= 5,
        "{err}"
    );
}

#[test]
fn bad_certificate_is_a_config_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let crt = dir.path().join("server.crt");
    let key = dir.path().join("server.key");
    std::fs::write(
        &crt,
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    )
    .expect("write");
    std::fs::write(&key, "garbage").expect("write");
    let (code, _out, err) = check(&format!(
        "[server]\ntls_listen = \"127.0.0.1:1\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
        crt.display(),
        key.display()
    ));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("server.tls_cert_file"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn valid_config_prints_ok_and_warns_about_shadowed_routes() {
    let (code, out, err) = check(
        r#"
[server]
listen = "127.0.0.1:8080"
[upstreams.portal]
addrs = ["127.0.0.1:9000"]
[[routes]]
name = "all"
path = "/"
upstream = "portal"
[[routes]]
name = "never"
path = "/dashboard"
upstream = "portal"
"#,
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "ok");
    assert!(
        err.contains("warning:") && err.contains("never") && err.contains("shadowed"),
        "{err}"
    );
}

#[test]
fn shipped_configs_pass_check() {
    let root = env!("CARGO_MANIFEST_DIR");
    let certs = crate::common::dev_certs();
    // The shipped files point at ../certs; check them against a copy next to generated certs.
    for name in ["partnergate.toml", "demo.toml"] {
        let text =
            std::fs::read_to_string(format!("{root}/config/{name}")).expect("read shipped config");
        let text = text.replace("../certs/", &format!("{}/", certs.display()));
        let (code, out, err) = check(&text);
        assert_eq!(code, 0, "{name}: {err}");
        assert_eq!(out.trim(), "ok", "{name}");
    }
}

#[test]
fn unknown_command_arguments_exit_2() {
    let out = Command::new(BIN)
        .args(["run", "--bogus"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(BIN)
        .args(["review", "--json", "--csv"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be used with"));
}
