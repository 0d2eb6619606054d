//! Users of an org: the caller, listing, invitations, roles, suspension and removal.

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::directory::{Identity, Invitation, NewInvitation, OrgStatus, ReviewParams, UserStatus};
use crate::lifecycle::{Refusal, RoleProblem};
use crate::session::{hash_token, new_token};

use super::orgs::org_in_scope;
use super::{ops, rfc3339, ApiRequest, Caller};

pub async fn me(req: ApiRequest) -> Response {
    let caller = caller!(ops::ME, req);
    let mut body = identity_json(caller.identity());
    body["owner_admin"] = json!(caller.owner);
    caller.ok(StatusCode::OK, body)
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
    })
}

pub async fn list(req: ApiRequest, Path(org_id): Path<String>) -> Response {
    let caller = caller!(ops::USERS_LIST, req);
    if let Err(r) = org_in_scope(&caller, &org_id).await {
        return r;
    }
    let params = review_params(&caller);
    let store = caller.state.sessions().directory().store().clone();
    let rows = try_store!(caller, store.review(&params).await);
    let users: Vec<Value> = rows
        .iter()
        .filter(|r| r.org_id == org_id)
        .map(|r| r.to_json())
        .collect();
    caller.ok(StatusCode::OK, json!({ "org": org_id, "users": users }))
}

pub fn review_params(caller: &Caller) -> ReviewParams {
    ReviewParams::new(
        caller.now,
        caller.ctx.config.lifecycle.inactive_after,
        &caller.ctx.config.server.owner_org_type,
    )
}

pub async fn invitations(req: ApiRequest, Path(org_id): Path<String>) -> Response {
    let caller = caller!(ops::INVITATIONS_LIST, req);
    if let Err(r) = org_in_scope(&caller, &org_id).await {
        return r;
    }
    let store = caller.state.sessions().directory().store().clone();
    let found = try_store!(caller, store.invitations_of_org(&org_id).await);
    let list: Vec<Value> = found
        .iter()
        .map(|i| invitation_json(i, caller.now, None))
        .collect();
    caller.ok(
        StatusCode::OK,
        json!({ "org": org_id, "invitations": list }),
    )
}

fn invitation_json(i: &Invitation, now: i64, link: Option<&str>) -> Value {
    let mut v = json!({
        "id": i.id,
        "user_id": i.user_id,
        "org": i.org_id,
        "email": i.email,
        "roles": i.roles,
        "state": i.state(now),
        "created_by": i.created_by,
        "created_at": rfc3339(i.created_at),
        "expires_at": rfc3339(i.expires_at),
    });
    if let Some(link) = link {
        v["link"] = json!(link);
    }
    v
}

/// The body of an invitation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteBody {
    /// Optional when approving a registration (the contact email is used).
    pub email: Option<String>,
    pub roles: Vec<String>,
}

pub async fn invite(req: ApiRequest, Path(org_id): Path<String>, body: Bytes) -> Response {
    let caller = caller!(ops::INVITE, req);
    let body: InviteBody = json_body!(caller, body);
    match create_invitation(&caller, &org_id, body).await {
        Ok(invitation) => caller.ok(StatusCode::CREATED, invitation),
        Err(r) => r,
    }
}

/// Check the bounds, write the invitation, tell the notifier; the invitation as JSON
/// with its link (the only place the token ever appears).
pub async fn create_invitation(
    caller: &Caller,
    org_id: &str,
    body: InviteBody,
) -> Result<Value, Response> {
    let email = body.email.unwrap_or_default().trim().to_lowercase();
    if !email_ok(&email) {
        return Err(caller.bad_request("email is not an email address"));
    }
    let roles = match role_list(body.roles, 1) {
        Ok(r) => r,
        Err(m) => return Err(caller.bad_request(m)),
    };
    let org = org_in_scope(caller, org_id).await?;
    let target = Some(format!("invitation:{email}"));
    let org_ref = Some(org_id.to_string());
    if matches!(org.status, OrgStatus::Suspended | OrgStatus::Offboarded) {
        return Err(caller
            .refuse_bounds(Refusal::OrgInactive, target, org_ref)
            .await);
    }
    let store = caller.state.sessions().directory().store().clone();
    let defined = match store.roles().await {
        Ok(r) => r,
        Err(e) => return Err(caller.store_error(e, target, org_ref).await),
    };
    match caller.admin().check_roles(&org, &roles, &defined) {
        Ok(()) => {}
        Err(RoleProblem::Unknown(role)) => {
            return Err(caller.bad_request(&format!("unknown role {role:?}")))
        }
        Err(RoleProblem::Refused(refusal)) => {
            return Err(caller.refuse_bounds(refusal, target, org_ref).await)
        }
    }
    // Re-inviting a still-invited user hands a new link to whoever sends it: only an admin
    // who may manage that user (and, for a delegated admin, every grant they already hold).
    let existing = match store.user_by_email(&email).await {
        Ok(u) => u,
        Err(e) => return Err(caller.store_error(e, target, org_ref).await),
    };
    if let Some(user) = existing.filter(|u| u.org_id == org.id && u.status == UserStatus::Invited) {
        let identity = match store.identity(&user.id).await {
            Ok(Some(i)) => i,
            Ok(None) => return Err(caller.bad_request("the invited user vanished; try again")),
            Err(e) => return Err(caller.store_error(e, target, org_ref).await),
        };
        let admin = caller.admin();
        let refusal = admin.check_user(&identity).err().or_else(|| {
            let above = |g: &crate::directory::AccountGrant| {
                let own = caller
                    .identity()
                    .grant(&g.account)
                    .filter(|o| o.expires_at.is_none_or(|t| t > caller.now));
                own.is_none_or(|o| o.level < g.level)
            };
            (!admin.owner && identity.grants.iter().any(above)).then_some(Refusal::GrantAboveOwn)
        });
        if let Some(refusal) = refusal {
            return Err(caller.refuse_bounds(refusal, target, org_ref).await);
        }
    }
    // The seat cap is checked by the store, under the org's row lock (`seat_cap`).
    let token = new_token();
    let ttl =
        i64::try_from(caller.ctx.config.lifecycle.invitation_ttl.as_secs()).unwrap_or(i64::MAX);
    let invitation = NewInvitation {
        org_id: org.id.clone(),
        email,
        roles,
        token_hash: hash_token(&token),
        expires_at: caller.now.saturating_add(ttl),
    };
    let created = match store.invite(&invitation, &caller.actor(), caller.now).await {
        Ok(i) => i,
        Err(e) => return Err(caller.store_error(e, target, org_ref).await),
    };
    caller.forget_user(&created.user_id);
    let link = format!(
        "{}/.partnergate/invite/{token}",
        caller.ctx.config.server.public_url.origin()
    );
    caller.state.notifier.invitation(&created, &link);
    Ok(invitation_json(&created, caller.now, Some(&link)))
}

/// Most roles one request may hand out.
const MAX_ROLES: usize = 20;

/// A role list from a request: at least `min`, at most [`MAX_ROLES`], duplicates dropped.
fn role_list(mut roles: Vec<String>, min: usize) -> Result<Vec<String>, &'static str> {
    roles.sort();
    roles.dedup();
    match roles.len() {
        n if n < min => Err("roles must name at least one role"),
        n if n > MAX_ROLES => Err("roles may name at most 20 roles"),
        _ => Ok(roles),
    }
}

/// A plausible email: one '@' with text on both sides, no spaces, at most 254 bytes.
pub fn email_ok(email: &str) -> bool {
    email.len() <= 254
        && !email
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.contains('@')
        })
}

/// The target user, when it exists and the caller may see it.
pub async fn user_in_scope(caller: &Caller, user_id: &str) -> Result<Identity, Response> {
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
        Err(e) => return Err(caller.store_error(e, target, None).await),
    };
    if let Err(refusal) = caller.admin().check_org(&identity.org.id) {
        let org = Some(identity.org.id.clone());
        return Err(caller.refuse_bounds(refusal, target, org).await);
    }
    Ok(identity)
}

/// The target user, when the caller may manage it (in scope, not themselves, not above
/// their own rights).
pub async fn user_to_manage(caller: &Caller, user_id: &str) -> Result<Identity, Response> {
    let identity = user_in_scope(caller, user_id).await?;
    if let Err(refusal) = caller.admin().check_user(&identity) {
        let target = Some(format!("user:{user_id}"));
        let org = Some(identity.org.id.clone());
        return Err(caller.refuse_bounds(refusal, target, org).await);
    }
    Ok(identity)
}

pub async fn get(req: ApiRequest, Path(user_id): Path<String>) -> Response {
    let caller = caller!(ops::USER_GET, req);
    match user_in_scope(&caller, &user_id).await {
        Ok(identity) => caller.ok(StatusCode::OK, identity_json(&identity)),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserPatch {
    roles: Vec<String>,
}

pub async fn update(req: ApiRequest, Path(user_id): Path<String>, body: Bytes) -> Response {
    let caller = caller!(ops::USER_UPDATE, req);
    let mut body: UserPatch = json_body!(caller, body);
    body.roles = match role_list(body.roles, 0) {
        Ok(r) => r,
        Err(m) => return caller.bad_request(m),
    };
    let identity = or_answer!(user_to_manage(&caller, &user_id).await);
    let org = or_answer!(org_in_scope(&caller, &identity.org.id).await);
    let target = Some(format!("user:{user_id}"));
    let org_ref = Some(org.id.clone());
    let store = caller.state.sessions().directory().store().clone();
    let defined = try_store!(caller, store.roles().await);
    match caller.admin().check_roles(&org, &body.roles, &defined) {
        Ok(()) => {}
        Err(RoleProblem::Unknown(role)) => {
            return caller.bad_request(&format!("unknown role {role:?}"))
        }
        Err(RoleProblem::Refused(refusal)) => {
            return caller.refuse_bounds(refusal, target, org_ref).await
        }
    }
    let before = try_store!(
        caller,
        store
            .set_user_roles(&user_id, &body.roles, &caller.actor(), caller.now)
            .await,
        target,
        org_ref
    );
    caller.forget_user(&user_id);
    let mut after = body.roles;
    after.sort();
    after.dedup();
    caller.ok(
        StatusCode::OK,
        json!({ "user_id": user_id, "before": before, "roles": after }),
    )
}

pub async fn remove(req: ApiRequest, Path(user_id): Path<String>) -> Response {
    let caller = caller!(ops::USER_REMOVE, req);
    let identity = or_answer!(user_to_manage(&caller, &user_id).await);
    let store = caller.state.sessions().directory().store().clone();
    let target = Some(format!("user:{user_id}"));
    try_store!(
        caller,
        store
            .remove_user(&user_id, &caller.actor(), caller.now)
            .await,
        target,
        Some(identity.org.id.clone())
    );
    caller.forget_user(&user_id);
    caller.ok(
        StatusCode::OK,
        json!({ "user_id": user_id, "status": "disabled" }),
    )
}

pub async fn status(req: ApiRequest, Path((user_id, action)): Path<(String, String)>) -> Response {
    let caller = caller!(ops::USER_STATUS, req);
    let status = match action.as_str() {
        "suspend" => UserStatus::Suspended,
        "reactivate" => UserStatus::Active,
        _ => {
            return caller.error(
                StatusCode::NOT_FOUND,
                "not_found",
                "action must be suspend or reactivate",
            )
        }
    };
    let identity = or_answer!(user_to_manage(&caller, &user_id).await);
    let target = Some(format!("user:{user_id}"));
    let org_ref = Some(identity.org.id.clone());
    // Reactivating a disabled user takes a seat: the store checks the cap (`seat_cap`).
    if identity.status == UserStatus::Invited {
        let message = "an invited user becomes active by accepting the invitation";
        return caller.error(StatusCode::CONFLICT, "conflict", message);
    }
    let store = caller.state.sessions().directory().store().clone();
    let change = try_store!(
        caller,
        store
            .set_user_status(&user_id, status, &caller.actor(), caller.now)
            .await,
        target,
        org_ref
    );
    caller.forget_user(&user_id);
    caller.ok(
        StatusCode::OK,
        json!({
            "user_id": user_id,
            "before": change.before,
            "status": change.after,
            "sessions_ended": change.sessions_ended,
            "audit_seq": change.audit_seq,
        }),
    )
}
