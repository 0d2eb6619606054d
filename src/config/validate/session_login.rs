//! `[session]` and `[login]`: the session cookie and its timeouts, and the login's
//! lockouts, rate limit and password rule.

use std::time::Duration;

use crate::config::file::{LoginFile, SessionFile};
use crate::config::{LoginConfig, PublicUrl, RateSpec, RedisFallback, SessionConfig};

use super::validator::Validator;

/// `public_url` decides whether the cookie can be `Secure` (and so keep a `__Host-` prefix).
pub(super) fn session(v: &mut Validator, f: SessionFile, public_url: &PublicUrl) -> SessionConfig {
    let cookie_name = f.cookie_name.unwrap_or_else(|| "__Host-partnergate".into());
    if cookie_name.is_empty()
        || !cookie_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        v.problem(
            "session.cookie_name",
            "use letters, digits, '-', '_' and '.'",
        );
    }
    let idle_timeout = v.duration(
        "session.idle_timeout",
        f.idle_timeout.as_deref(),
        Duration::from_secs(30 * 60),
    );
    let absolute_timeout = v.duration(
        "session.absolute_timeout",
        f.absolute_timeout.as_deref(),
        Duration::from_secs(12 * 3600),
    );
    if idle_timeout > absolute_timeout {
        v.problem(
            "session.idle_timeout",
            "must not be longer than absolute_timeout",
        );
    }
    let mut session = SessionConfig {
        cookie_secure: true,
        cookie_name,
        idle_timeout,
        absolute_timeout,
    };
    if !public_url.https {
        // `__Host-` cookies must be Secure; on a plain-HTTP public URL (demo, tests)
        // the prefix and the flag are dropped together.
        session.cookie_secure = false;
        if let Some(rest) = session.cookie_name.strip_prefix("__Host-") {
            session.cookie_name = rest.to_string();
        }
    }
    session
}

pub(super) fn login(v: &mut Validator, f: LoginFile) -> LoginConfig {
    LoginConfig {
        max_failures: v.int("login.max_failures", f.max_failures, 5, 1, 1_000) as u32,
        max_failures_per_ip: v.int(
            "login.max_failures_per_ip",
            f.max_failures_per_ip,
            50,
            1,
            100_000,
        ) as u32,
        lockout: v.duration(
            "login.lockout",
            f.lockout.as_deref(),
            Duration::from_secs(15 * 60),
        ),
        rate_limit_per_ip: match f.rate_limit_per_ip {
            Some(r) => v.rate("login.rate_limit_per_ip", r, RedisFallback::Deny),
            None => RateSpec {
                per_second: 1.0,
                burst: 10,
                on_redis_error: RedisFallback::Deny,
            },
        },
        password_min_length: v.int(
            "login.password_min_length",
            f.password_min_length,
            12,
            8,
            128,
        ) as usize,
        reset_ttl: v.duration(
            "login.reset_ttl",
            f.reset_ttl.as_deref(),
            Duration::from_secs(30 * 60),
        ),
    }
}
