//! `[redis]`: the shared rate-limit counters of several instances.

use std::time::Duration;

use crate::config::file::RedisFile;
use crate::config::RedisConfig;

use super::validator::Validator;

pub(super) fn redis(v: &mut Validator, mut r: RedisFile) -> RedisConfig {
    // As for the directory: a password in the URL can stay out of the file.
    if let Some(url) = std::env::var("PARTNERGATE_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        r.url = url;
    }
    if !(r.url.starts_with("redis://") || r.url.starts_with("rediss://")) {
        v.problem("redis.url", "must start with redis:// or rediss://");
    }
    let key_prefix = r.key_prefix.unwrap_or_else(|| "partnergate:".into());
    if key_prefix.len() > 64
        || key_prefix
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        v.problem(
            "redis.key_prefix",
            "at most 64 characters, no spaces or control characters",
        );
    }
    let timeout = v.duration(
        "redis.timeout",
        r.timeout.as_deref(),
        Duration::from_millis(50),
    );
    if timeout.is_zero() || timeout > Duration::from_secs(5) {
        v.problem(
            "redis.timeout",
            "must be above 0 and at most 5s (it is on the request path)",
        );
    }
    RedisConfig {
        url: r.url,
        key_prefix,
        timeout,
    }
}
