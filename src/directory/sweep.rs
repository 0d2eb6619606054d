//! The inactivity sweep: it disables the users the access review flags inactive (no
//! login for `lifecycle.inactive_after`), through the store, so each is audited.

use std::time::Duration;

use super::audit::AuditActor;
use super::error::{StoreError, StoreResult};
use super::model::{Timestamp, UserStatus};
use super::review::inactive_cutoff;
use super::store::Store;

/// The audit reason of a user disabled by the inactivity sweep.
pub const REASON_INACTIVE: &str = "inactive";

/// Disable every active user without a login (or, never logged in, created) before
/// `now - inactive_after`: each through [`Store::set_user_status`] by the system actor
/// with reason [`REASON_INACTIVE`], so it is audited, their sessions end and every
/// instance drops them. Returns the ids disabled. A user that vanished meanwhile is
/// skipped; any other error stops the sweep (the next one resumes).
pub async fn sweep_inactive(
    store: &dyn Store,
    now: Timestamp,
    inactive_after: Duration,
) -> StoreResult<Vec<String>> {
    let cutoff = inactive_cutoff(now, inactive_after);
    let actor = AuditActor {
        reason: Some(REASON_INACTIVE.to_string()),
        ..AuditActor::system()
    };
    let mut disabled = Vec::new();
    for id in store.inactive_users(cutoff).await? {
        match store
            .set_user_status(&id, UserStatus::Disabled, &actor, now)
            .await
        {
            Ok(_) => disabled.push(id),
            Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(disabled)
}
