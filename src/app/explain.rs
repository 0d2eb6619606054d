//! `partnergate explain`: which route a request matches, who the user is, what each rule
//! of the route says, the decision (with the rule that decided it) and the rate limits
//! that apply, without sending any traffic. The decision is the request path's own:
//! admission runs on the request as the proxy would see it.
//!
//! Exit codes: 0 whenever the explanation was printed, whatever the decision; 2 for
//! invalid usage or configuration (including a `--url` the gateway would answer with 400);
//! 1 when the directory cannot be reached.

mod lines;
mod report;
mod target;
#[cfg(test)]
mod tests;
mod text;
mod view;

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use crate::directory::{Amr, Store, StoreResult};
use crate::policy::AuthStrength;

/// How long `explain` waits for the directory (an interactive command: not the 30 s of
/// `directory import`).
const DIRECTORY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub use report::explain_with;
pub use target::{parse_method, parse_target};
pub use text::render;
pub use view::{Explanation, Who};

/// How the user is assumed to have signed in (`--mfa`, `--auth-age`).
pub struct SignIn<'a> {
    pub mfa: bool,
    pub auth_age: Option<&'a str>,
}

pub fn run(
    config_path: &Path,
    user: Option<&str>,
    method: &str,
    url: &str,
    json: bool,
    sign_in: SignIn<'_>,
) -> ExitCode {
    match explain_command(config_path, user, method, url, sign_in) {
        Ok(e) => print(&e, json),
        Err(code) => code,
    }
}

fn explain_command(
    config_path: &Path,
    user: Option<&str>,
    method: &str,
    url: &str,
    sign_in: SignIn<'_>,
) -> Result<Explanation, ExitCode> {
    let usage = |what: String| {
        eprintln!("error: {what}");
        ExitCode::from(2)
    };
    let age = match sign_in.auth_age {
        None => 0,
        Some(raw) => humantime::parse_duration(raw.trim())
            .map_err(|e| usage(format!("--auth-age {raw:?}: {e}")))?
            .as_secs() as i64,
    };
    let config = super::directory_cmd::load_config(config_path)?;
    let method = parse_method(method).map_err(|e| usage(format!("--method: {e}")))?;
    let target = parse_target(method, url, &config.server.public_url)
        .map_err(|e| usage(format!("--url {url:?}: {e}")))?;
    let user = match user.map(str::trim) {
        Some("") => return Err(usage("--user: must not be empty".into())),
        other => other,
    };
    let who = match user {
        None => Who::Anonymous,
        Some(user) => {
            let rt = super::directory_cmd::runtime()?;
            let url = super::services::redact(&config.directory.url);
            rt.block_on(async {
                let lookup = async {
                    let store = super::directory_cmd::connect(&config.directory).await?;
                    resolve(&*store, user).await.map_err(|e| {
                        eprintln!("error: directory {url}: {e}");
                        ExitCode::from(1)
                    })
                };
                tokio::time::timeout(DIRECTORY_TIMEOUT, lookup)
                    .await
                    .unwrap_or_else(|_| {
                        eprintln!(
                            "error: directory {url}: no answer within {}s",
                            DIRECTORY_TIMEOUT.as_secs()
                        );
                        Err(ExitCode::from(1))
                    })
            })?
        }
    };
    let now = crate::clock::system().now();
    let amr = match sign_in.mfa {
        true => Amr::PWD.with(Amr::OTP),
        false => Amr::PWD,
    };
    let strength = AuthStrength {
        amr,
        auth_time: Some(now - age),
    };
    Ok(explain_with(
        &Arc::new(config),
        &target,
        &who,
        now,
        strength,
    ))
}

/// `user` is an email (case-insensitive) or, without '@', a user id (as a bearer token's
/// user claim may be).
async fn resolve(store: &dyn Store, user: &str) -> StoreResult<Who> {
    let (user_id, shown) = if user.contains('@') {
        let email = user.to_lowercase();
        match store.user_by_email(&email).await? {
            Some(record) => (record.id, email),
            None => return Ok(Who::Unknown(email)),
        }
    } else {
        (user.to_string(), user.to_string())
    };
    Ok(match store.identity(&user_id).await? {
        Some(identity) => Who::Known(Box::new(identity)),
        None => Who::Unknown(shown),
    })
}

fn print(e: &Explanation, json: bool) -> ExitCode {
    let text = if json {
        match serde_json::to_string_pretty(e) {
            Ok(s) => s + "\n",
            Err(err) => {
                eprintln!("error: cannot write JSON: {err}");
                return ExitCode::from(1);
            }
        }
    } else {
        render(e)
    };
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: cannot write output: {err}");
            ExitCode::from(1)
        }
    }
}
