//! `[lifecycle]`: the partner lifecycle's timeouts and the usage flush.

use std::time::Duration;

use crate::config::file::LifecycleFile;
use crate::config::LifecycleConfig;

use super::validator::Validator;

/// The bounds of `lifecycle.usage_flush`: counts wait in memory (and are lost with a
/// crash) until the flush; each flush is a write transaction on the directory.
const MIN_USAGE_FLUSH: Duration = Duration::from_secs(1);
const MAX_USAGE_FLUSH: Duration = Duration::from_secs(3600);

pub(super) fn lifecycle(v: &mut Validator, f: LifecycleFile) -> LifecycleConfig {
    let day = 24 * 3600;
    let usage_flush = v.duration(
        "lifecycle.usage_flush",
        f.usage_flush.as_deref(),
        Duration::from_secs(60),
    );
    if !(MIN_USAGE_FLUSH..=MAX_USAGE_FLUSH).contains(&usage_flush) {
        v.problem(
            "lifecycle.usage_flush",
            "must be between \"1s\" and \"1h\" (usage counts wait in memory until the flush)",
        );
    }
    let max_pending = v.int(
        "lifecycle.max_pending_registrations",
        f.max_pending_registrations,
        100,
        1,
        100_000,
    );
    let per_ip = v.int(
        "lifecycle.registrations_per_ip",
        f.registrations_per_ip,
        5,
        1,
        10_000,
    );
    LifecycleConfig {
        max_pending_registrations: u32::try_from(max_pending).unwrap_or(100),
        registrations_per_ip: u32::try_from(per_ip).unwrap_or(5),
        usage_flush: usage_flush.clamp(MIN_USAGE_FLUSH, MAX_USAGE_FLUSH),
        invitation_ttl: v.duration(
            "lifecycle.invitation_ttl",
            f.invitation_ttl.as_deref(),
            Duration::from_secs(7 * day),
        ),
        inactive_after: v.duration(
            "lifecycle.inactive_after",
            f.inactive_after.as_deref(),
            Duration::from_secs(90 * day),
        ),
        max_grant_ttl: v.duration(
            "lifecycle.max_grant_ttl",
            f.max_grant_ttl.as_deref(),
            Duration::from_secs(90 * day),
        ),
    }
}
