//! Users of an org: the caller, listing, roles, suspension and removal.

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::directory::{FactorOverview, FactorSummary, Identity, ReviewParams, UserStatus};
use crate::lifecycle::RoleProblem;

use super::scope::{org_in_scope, user_in_scope, user_to_manage};
use super::{ops, rfc3339, role_list, Answer, ApiRequest, ApiResult, Caller};

pub async fn me(req: ApiRequest) -> ApiResult {
    let caller = req.authorize(&ops::ME).await?;
    let mut body = identity_json(caller.identity());
    body["owner_admin"] = json!(caller.owner);
    Ok(caller.ok(StatusCode::OK, body))
}

pub fn identity_json(id: &Identity) -> Value {
    let grants: Vec<Value> = id
        .grants
        .iter()
        .map(|g| {
            json!({
                "account": g.account,
                "permission": g.level.as_str(),
                "expires": g.expires_at.map(rfc3339),
            })
        })
        .collect();
    json!({
        "user_id": id.user_id,
        "email": id.email,
        "status": id.status.as_str(),
        "org": id.org.id,
        "org_name": id.org.name,
        "org_type": id.org.org_type,
        "org_status": id.org.status.as_str(),
        "roles": id.roles,
        "permissions": id.permissions,
        "grants": grants,
        "second_factors": id.second_factors,
        "org_mfa": if id.org.mfa_required { "required" } else { "optional" },
    })
}

pub async fn list(req: ApiRequest, Path(org_id): Path<String>) -> ApiResult {
    let caller = req.authorize(&ops::USERS_LIST).await?;
    org_in_scope(&caller, &org_id).await?;
    let params = review_params(&caller);
    let store = caller.state.sessions().directory().store().clone();
    let rows = store.review(&params).await.answer(&caller)?;
    let users: Vec<Value> = rows
        .iter()
        .filter(|r| r.org_id == org_id)
        .map(|r| r.to_json())
        .collect();
    Ok(caller.ok(StatusCode::OK, json!({ "org": org_id, "users": users })))
}

pub fn review_params(caller: &Caller) -> ReviewParams {
    ReviewParams::new(
        caller.now,
        caller.ctx.config.lifecycle.inactive_after,
        &caller.ctx.config.server.owner_org_type,
    )
}

pub async fn get(req: ApiRequest, Path(user_id): Path<String>) -> ApiResult {
    let caller = req.authorize(&ops::USER_GET).await?;
    let identity = user_in_scope(&caller, &user_id).await?;
    let store = caller.state.sessions().directory().store().clone();
    let factors = store.factors(&user_id).await.answer(&caller)?;
    let left = store.recovery_codes_left(&user_id).await.answer(&caller)?;
    let overview = FactorOverview {
        factors: factors.iter().map(FactorSummary::from).collect(),
        recovery_codes_left: left,
    };
    let mut body = identity_json(&identity);
    body["factors"] = json!(overview);
    Ok(caller.ok(StatusCode::OK, body))
}

/// An admin (owner, or a delegated admin within their bounds) removes a user's second
/// factors and recovery codes: the user signs in with the password and enrols again.
pub async fn reset_factors(req: ApiRequest, Path(user_id): Path<String>) -> ApiResult {
    let caller = req.authorize(&ops::USER_FACTORS_RESET).await?;
    let identity = user_to_manage(&caller, &user_id).await?;
    let target = format!("user:{user_id}");
    let org = Some(identity.org.id.clone());
    let store = caller.state.sessions().directory().store().clone();
    let before = json!({ "second_factors": identity.second_factors });
    let audit = caller.actor().entry(
        "factor.reset",
        target.clone(),
        org.clone(),
        before,
        json!({}),
    );
    let removed = store
        .reset_factors(&user_id, &audit, caller.now)
        .await
        .answer_for(&caller, &Some(target), &org)?;
    caller.forget_user(&user_id);
    Ok(caller.ok(
        StatusCode::OK,
        json!({ "user_id": user_id, "factors_removed": removed }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserPatch {
    roles: Vec<String>,
}

pub async fn update(req: ApiRequest, Path(user_id): Path<String>, body: Bytes) -> ApiResult {
    let caller = req.authorize(&ops::USER_UPDATE).await?;
    let mut body: UserPatch = caller.json(&body)?;
    body.roles = match role_list(body.roles, 0) {
        Ok(r) => r,
        Err(m) => return Err(caller.bad_request(m)),
    };
    let identity = user_to_manage(&caller, &user_id).await?;
    let org = org_in_scope(&caller, &identity.org.id).await?;
    let target = Some(format!("user:{user_id}"));
    let org_ref = Some(org.id.clone());
    let store = caller.state.sessions().directory().store().clone();
    let defined = store.roles().await.answer(&caller)?;
    match caller.admin().check_roles(&org, &body.roles, &defined) {
        Ok(()) => {}
        Err(RoleProblem::Unknown(role)) => {
            return Err(caller.bad_request(&format!("unknown role {role:?}")))
        }
        Err(RoleProblem::Refused(refusal)) => {
            return Err(caller.refuse_bounds(refusal, target, org_ref))
        }
    }
    let before = store
        .set_user_roles(&user_id, &body.roles, &caller.actor(), caller.now)
        .await
        .answer_for(&caller, &target, &org_ref)?;
    caller.forget_user(&user_id);
    let mut after = body.roles;
    after.sort();
    after.dedup();
    Ok(caller.ok(
        StatusCode::OK,
        json!({ "user_id": user_id, "before": before, "roles": after }),
    ))
}

pub async fn remove(req: ApiRequest, Path(user_id): Path<String>) -> ApiResult {
    let caller = req.authorize(&ops::USER_REMOVE).await?;
    let identity = user_to_manage(&caller, &user_id).await?;
    let store = caller.state.sessions().directory().store().clone();
    let target = Some(format!("user:{user_id}"));
    store
        .remove_user(&user_id, &caller.actor(), caller.now)
        .await
        .answer_for(&caller, &target, &Some(identity.org.id.clone()))?;
    caller.forget_user(&user_id);
    Ok(caller.ok(
        StatusCode::OK,
        json!({ "user_id": user_id, "status": "disabled" }),
    ))
}

pub async fn status(req: ApiRequest, Path((user_id, action)): Path<(String, String)>) -> ApiResult {
    let caller = req.authorize(&ops::USER_STATUS).await?;
    let status = match action.as_str() {
        "suspend" => UserStatus::Suspended,
        "reactivate" => UserStatus::Active,
        _ => {
            return Err(caller.error(
                StatusCode::NOT_FOUND,
                "not_found",
                "action must be suspend or reactivate",
            ))
        }
    };
    let identity = user_to_manage(&caller, &user_id).await?;
    let target = Some(format!("user:{user_id}"));
    let org_ref = Some(identity.org.id.clone());
    // Reactivating a disabled user takes a seat: the store checks the cap (`seat_cap`).
    if identity.status == UserStatus::Invited {
        let message = "an invited user becomes active by accepting the invitation";
        return Err(caller.error(StatusCode::CONFLICT, "conflict", message));
    }
    let store = caller.state.sessions().directory().store().clone();
    let change = store
        .set_user_status(&user_id, status, &caller.actor(), caller.now)
        .await
        .answer_for(&caller, &target, &org_ref)?;
    caller.forget_user(&user_id);
    Ok(caller.ok(
        StatusCode::OK,
        json!({
            "user_id": user_id,
            "before": change.before,
            "status": change.after,
            "sessions_ended": change.sessions_ended,
            "audit_seq": change.audit_seq,
        }),
    ))
}
