//! `[mail]`: the SMTP server (URL with its TLS mode), the sender, and the password from a
//! file or an environment variable (never from the configuration itself).

use std::time::Duration;

use super::super::file::MailFile;
use super::super::{MailConfig, MailTls};
use super::validator::Validator;

/// The longest password file read.
const MAX_PASSWORD_BYTES: u64 = 4096;

pub(super) fn mail(v: &mut Validator, f: MailFile) -> Option<MailConfig> {
    let before = v.problem_count();
    let target = match f.smtp_url.as_deref() {
        None => {
            v.problem("mail.smtp_url", "required in [mail]");
            None
        }
        Some(raw) => smtp_target(raw)
            .map_err(|e| v.problem("mail.smtp_url", e))
            .ok(),
    };
    let from = match f.from.as_deref().map(str::trim) {
        None | Some("") => {
            v.problem("mail.from", "required in [mail]: the sender's address");
            String::new()
        }
        Some(from) if !mailbox_ok(from) => {
            v.problem(
                "mail.from",
                format!(
                    "{from:?} is not an address (name@example.com or \"Name <name@example.com>\")"
                ),
            );
            String::new()
        }
        Some(from) => from.to_string(),
    };
    let password = match (&f.password_file, &f.password_env) {
        (Some(_), Some(_)) => {
            v.problem(
                "mail.password_file",
                "set password_file or password_env, not both",
            );
            None
        }
        (Some(path), None) => {
            let path = v.path(path);
            match read_secret(&path) {
                Ok(p) => Some(p),
                Err(e) => {
                    v.problem("mail.password_file", format!("{}: {e}", path.display()));
                    None
                }
            }
        }
        (None, Some(name)) => match std::env::var(name) {
            Ok(p) if !p.is_empty() => Some(p),
            _ => {
                v.problem(
                    "mail.password_env",
                    format!("environment variable {name:?} is not set"),
                );
                None
            }
        },
        (None, None) => None,
    };
    if password.is_some() && f.username.is_none() {
        v.problem("mail.username", "required when a password is set");
    }
    let max_attempts = v.int("mail.max_attempts", f.max_attempts, 12, 1, 1000) as u32;
    let timeout = v.duration(
        "mail.timeout",
        f.timeout.as_deref(),
        Duration::from_secs(30),
    );
    let (host, port, tls) = target?;
    (v.problem_count() == before).then_some(MailConfig {
        host,
        port,
        tls,
        from,
        username: f.username,
        password,
        max_attempts,
        timeout,
    })
}

/// `smtp://host[:port][?tls=none]` (STARTTLS required unless `tls=none`; default port
/// 587) or `smtps://host[:port]` (implicit TLS; default port 465).
fn smtp_target(raw: &str) -> Result<(String, u16, MailTls), String> {
    let (scheme, rest) = raw.split_once("://").ok_or_else(|| {
        format!("{raw:?} is not a URL: use smtp://host:port or smtps://host:port")
    })?;
    let (authority, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let authority = authority.trim_end_matches('/');
    if authority.contains('@') {
        return Err("put the user name in mail.username and the password in mail.password_file or mail.password_env, not in the URL".into());
    }
    let mut tls = match scheme {
        "smtp" => MailTls::StartTls,
        "smtps" => MailTls::Implicit,
        other => return Err(format!("scheme {other:?} is not smtp or smtps")),
    };
    match query {
        None => {}
        Some("tls=none") if tls == MailTls::StartTls => tls = MailTls::None,
        Some("tls=starttls") if tls == MailTls::StartTls => {}
        Some(q) => {
            return Err(format!(
                "unknown option {q:?} (smtp:// takes ?tls=none or ?tls=starttls)"
            ))
        }
    }
    let default_port = if tls == MailTls::Implicit { 465 } else { 587 };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("port {p:?} is not a port number"))?,
        ),
        None => (authority, default_port),
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._[]:".contains(&b));
    if !host_ok {
        return Err(format!("host {host:?} is not a host name"));
    }
    Ok((host.trim_matches(['[', ']']).to_string(), port, tls))
}

fn mailbox_ok(s: &str) -> bool {
    let addr = match (s.rfind('<'), s.ends_with('>')) {
        (Some(i), true) => &s[i + 1..s.len() - 1],
        _ => s,
    };
    let mut parts = addr.split('@');
    matches!(
        (parts.next(), parts.next(), parts.next()),
        (Some(l), Some(d), None) if !l.is_empty() && d.contains('.') && !addr.contains(char::is_whitespace)
    )
}

fn read_secret(path: &std::path::Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if meta.len() > MAX_PASSWORD_BYTES {
        return Err(format!("larger than {MAX_PASSWORD_BYTES} bytes"));
    }
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let secret = text.trim_end_matches(['\r', '\n']).to_string();
    if secret.is_empty() {
        return Err("empty".into());
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls() {
        assert_eq!(
            smtp_target("smtp://mail.example.com").unwrap(),
            ("mail.example.com".into(), 587, MailTls::StartTls)
        );
        assert_eq!(
            smtp_target("smtps://mail.example.com:2465").unwrap(),
            ("mail.example.com".into(), 2465, MailTls::Implicit)
        );
        assert_eq!(
            smtp_target("smtp://127.0.0.1:2525?tls=none").unwrap(),
            ("127.0.0.1".into(), 2525, MailTls::None)
        );
        for bad in [
            "mail.example.com",
            "http://x",
            "smtp://u:p@x",
            "smtp://x:0",
            "smtp://x:99999",
            "smtps://x?tls=none",
            "smtp://x?tls=sometimes",
            "smtp://",
        ] {
            assert!(smtp_target(bad).is_err(), "{bad}");
        }
        assert!(mailbox_ok("Partner Portal <portal@example.com>"));
        assert!(mailbox_ok("portal@example.com"));
        assert!(!mailbox_ok("portal"));
        assert!(!mailbox_ok("a b@example.com"));
    }
}
