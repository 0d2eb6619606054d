//! Invitations to an org: listing them, and inviting a user (within the bounds, the
//! seat cap checked by the store), with the single-use link handed to the notifier.

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::directory::{Invitation, NewInvitation, OrgStatus, UserStatus};
use crate::lifecycle::{Refusal, RoleProblem};
use crate::session::{hash_token, new_token};

use super::scope::org_in_scope;
use super::{email_ok, ops, rfc3339, role_list, Answer, ApiError, ApiRequest, ApiResult, Caller};

pub async fn list(req: ApiRequest, Path(org_id): Path<String>) -> ApiResult {
    let caller = req.authorize(&ops::INVITATIONS_LIST).await?;
    org_in_scope(&caller, &org_id).await?;
    let store = caller.state.sessions().directory().store().clone();
    let found = store.invitations_of_org(&org_id).await.answer(&caller)?;
    let list: Vec<Value> = found
        .iter()
        .map(|i| invitation_json(i, caller.now, None))
        .collect();
    Ok(caller.ok(
        StatusCode::OK,
        json!({ "org": org_id, "invitations": list }),
    ))
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

pub async fn invite(req: ApiRequest, Path(org_id): Path<String>, body: Bytes) -> ApiResult {
    let caller = req.authorize(&ops::INVITE).await?;
    let body: InviteBody = caller.json(&body)?;
    let invitation = create_invitation(&caller, &org_id, body).await?;
    Ok(caller.ok(StatusCode::CREATED, invitation))
}

/// Check the bounds, write the invitation, tell the notifier; the invitation as JSON
/// with its link (the only place the token ever appears).
pub async fn create_invitation(
    caller: &Caller,
    org_id: &str,
    body: InviteBody,
) -> Result<Value, ApiError> {
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
        return Err(caller.refuse_bounds(Refusal::OrgInactive, target, org_ref));
    }
    let store = caller.state.sessions().directory().store().clone();
    let defined = match store.roles().await {
        Ok(r) => r,
        Err(e) => return Err(caller.store_error(e, target, org_ref)),
    };
    match caller.admin().check_roles(&org, &roles, &defined) {
        Ok(()) => {}
        Err(RoleProblem::Unknown(role)) => {
            return Err(caller.bad_request(&format!("unknown role {role:?}")))
        }
        Err(RoleProblem::Refused(refusal)) => {
            return Err(caller.refuse_bounds(refusal, target, org_ref))
        }
    }
    // Re-inviting a still-invited user hands a new link to whoever sends it: only an admin
    // who may manage that user (and, for a delegated admin, every grant they already hold).
    let existing = match store.user_by_email(&email).await {
        Ok(u) => u,
        Err(e) => return Err(caller.store_error(e, target, org_ref)),
    };
    if let Some(user) = existing.filter(|u| u.org_id == org.id && u.status == UserStatus::Invited) {
        let identity = match store.identity(&user.id).await {
            Ok(Some(i)) => i,
            Ok(None) => return Err(caller.bad_request("the invited user vanished; try again")),
            Err(e) => return Err(caller.store_error(e, target, org_ref)),
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
            return Err(caller.refuse_bounds(refusal, target, org_ref));
        }
    }
    // The seat cap is checked by the store, under the org's row lock (`seat_cap`).
    let token = new_token();
    let ttl =
        i64::try_from(caller.ctx.config.lifecycle.invitation_ttl.as_secs()).unwrap_or(i64::MAX);
    let link = format!(
        "{}/.partnergate/invite/{token}",
        caller.ctx.config.server.public_url.origin()
    );
    let expires_at = caller.now.saturating_add(ttl);
    let mail = caller.state.mail.as_ref().map(|m| {
        let until = crate::clock::rfc3339(expires_at).unwrap_or_default();
        m.letters.invitation(&email, &org.name, &link, &until)
    });
    let invitation = NewInvitation {
        org_id: org.id.clone(),
        email,
        roles,
        token_hash: hash_token(&token),
        expires_at,
        mail,
    };
    let created = match store.invite(&invitation, &caller.actor(), caller.now).await {
        Ok(i) => i,
        Err(e) => return Err(caller.store_error(e, target, org_ref)),
    };
    caller.forget_user(&created.user_id);
    match &caller.state.mail {
        Some(mail) => mail.queued(),
        None => caller.state.notifier.invitation(&created, &link),
    }
    Ok(invitation_json(&created, caller.now, Some(&link)))
}
