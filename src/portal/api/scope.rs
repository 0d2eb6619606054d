//! What an admin may reach: the org or user a request names, when it exists and lies
//! within the caller's bounds (their own org for a delegated admin); else the 404, or
//! the audited 403.

use axum::http::StatusCode;

use crate::directory::{Identity, OrgDetail};

use super::{ApiError, Caller};

/// The org, when it exists and the caller may act on it (else the 403/404 answer).
pub async fn org_in_scope(caller: &Caller, org_id: &str) -> Result<OrgDetail, ApiError> {
    let target = Some(format!("org:{org_id}"));
    if let Err(refusal) = caller.admin().check_org(org_id) {
        return Err(caller.refuse_bounds(refusal, target, Some(org_id.to_string())));
    }
    let store = caller.state.sessions().directory().store().clone();
    match store.org(org_id).await {
        Ok(Some(org)) => Ok(org),
        Ok(None) => Err(caller.error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no org {org_id:?}"),
        )),
        Err(e) => Err(caller.store_error(e, target, None)),
    }
}

/// The target user, when it exists and the caller may see it.
pub async fn user_in_scope(caller: &Caller, user_id: &str) -> Result<Identity, ApiError> {
    let directory = caller.state.sessions().directory();
    let target = Some(format!("user:{user_id}"));
    let identity = match directory.store().identity(user_id).await {
        Ok(Some(id)) => id,
        Ok(None) => {
            return Err(caller.error(
                StatusCode::NOT_FOUND,
                "not_found",
                &format!("no user {user_id:?}"),
            ))
        }
        Err(e) => return Err(caller.store_error(e, target, None)),
    };
    if let Err(refusal) = caller.admin().check_org(&identity.org.id) {
        let org = Some(identity.org.id.clone());
        return Err(caller.refuse_bounds(refusal, target, org));
    }
    Ok(identity)
}

/// The target user, when the caller may manage it (in scope, not themselves, not above
/// their own rights).
pub async fn user_to_manage(caller: &Caller, user_id: &str) -> Result<Identity, ApiError> {
    let identity = user_in_scope(caller, user_id).await?;
    if let Err(refusal) = caller.admin().check_user(&identity) {
        let target = Some(format!("user:{user_id}"));
        let org = Some(identity.org.id.clone());
        return Err(caller.refuse_bounds(refusal, target, org));
    }
    Ok(identity)
}
