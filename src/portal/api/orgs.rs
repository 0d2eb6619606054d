//! Orgs, registration requests and roles.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::directory::data::RoleEntry;
use crate::directory::{NewOrg, OrgDetail, OrgPatch, OrgStatus};
use crate::lifecycle::Refusal;

use super::invitations::{self, InviteBody};
use super::scope::org_in_scope;
use super::{email_ok, ops, Answer, ApiRequest, ApiResult};

#[derive(Deserialize)]
pub struct ListQuery {
    status: Option<String>,
}

pub async fn list(req: ApiRequest, Query(q): Query<ListQuery>) -> ApiResult {
    let caller = req.authorize(&ops::ORGS_LIST).await?;
    let status = match q.status.as_deref().map(OrgStatus::parse) {
        Some(None) => {
            return Err(
                caller.bad_request("status must be pending, active, suspended or offboarded")
            )
        }
        Some(s) => s,
        None => None,
    };
    let store = caller.state.sessions().directory().store().clone();
    let orgs = store.orgs().await.answer(&caller)?;
    let scope = caller.admin().scope();
    let orgs: Vec<Value> = orgs
        .iter()
        .filter(|o| scope.is_none_or(|own| o.id == own))
        .filter(|o| status.is_none_or(|s| o.status == s))
        .map(OrgDetail::to_json)
        .collect();
    Ok(caller.ok(StatusCode::OK, json!({ "orgs": orgs })))
}

/// The body of `POST /orgs`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewOrgBody {
    id: Option<String>,
    name: String,
    #[serde(rename = "type")]
    org_type: String,
    max_users: Option<u32>,
    allowed_roles: Option<Vec<String>>,
    /// A duration (`"30d"`).
    max_grant_ttl: Option<String>,
    contact_email: Option<String>,
}

pub async fn create(req: ApiRequest, body: Bytes) -> ApiResult {
    let caller = req.authorize(&ops::ORG_CREATE).await?;
    let body: NewOrgBody = caller.json(&body)?;
    let id = body.id.unwrap_or_else(|| slug(&body.name));
    let max_grant_ttl = match body.max_grant_ttl.as_deref().map(parse_ttl).transpose() {
        Ok(t) => t,
        Err(m) => return Err(caller.bad_request(&m)),
    };
    let org = NewOrg {
        id,
        name: body.name.trim().to_string(),
        org_type: body.org_type.trim().to_string(),
        status: OrgStatus::Active,
        max_users: body.max_users,
        allowed_roles: body.allowed_roles,
        max_grant_ttl,
        contact_email: body.contact_email.map(|e| e.trim().to_lowercase()),
    };
    if let Err(m) = validate_org(&org) {
        return Err(caller.bad_request(&m));
    }
    let store = caller.state.sessions().directory().store().clone();
    let target = Some(format!("org:{}", org.id));
    let created = store
        .create_org(&org, &caller.actor(), caller.now)
        .await
        .answer_for(&caller, &target, &Some(org.id.clone()))?;
    Ok(caller.ok(StatusCode::CREATED, created.to_json()))
}

/// Name, type, id and contact of a new org (the register form uses it too).
pub fn validate_org(org: &NewOrg) -> Result<(), String> {
    let id_ok = !org.id.is_empty()
        && org.id.len() <= 64
        && org
            .id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !id_ok {
        return Err("id must be 1-64 characters a-z, 0-9 or '-'".into());
    }
    if org.name.is_empty() || org.name.chars().count() > 200 || !super::text_ok(&org.name) {
        return Err("name must be 1-200 characters".into());
    }
    if org.org_type.is_empty()
        || org.org_type.len() > 64
        || !org
            .org_type
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err("type must be 1-64 characters a-z, 0-9, '-' or '_'".into());
    }
    if let Some(email) = &org.contact_email {
        if !email_ok(email) {
            return Err("contact_email is not an email address".into());
        }
    }
    Ok(())
}

/// An org id from a name: lower-case letters and digits, other runs as one '-', plus a
/// short random suffix so two orgs of the same name never collide.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
        if out.len() >= 40 {
            break;
        }
    }
    let base = out.trim_end_matches('-');
    let base = if base.is_empty() { "org" } else { base };
    format!("{base}-{:04x}", rand::random::<u16>())
}

fn parse_ttl(s: &str) -> Result<i64, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("max_grant_ttl {s:?} is not a duration: {e}"))?;
    i64::try_from(d.as_secs())
        .ok()
        .filter(|s| *s > 0)
        .ok_or_else(|| format!("max_grant_ttl {s:?} is out of range"))
}

pub async fn get(req: ApiRequest, Path(org_id): Path<String>) -> ApiResult {
    let caller = req.authorize(&ops::ORG_GET).await?;
    let org = org_in_scope(&caller, &org_id).await?;
    Ok(caller.ok(StatusCode::OK, org.to_json()))
}

pub async fn update(req: ApiRequest, Path(org_id): Path<String>, body: Bytes) -> ApiResult {
    let caller = req.authorize(&ops::ORG_UPDATE).await?;
    let fields: Map<String, Value> = caller.json(&body)?;
    let patch = match org_patch(&fields) {
        Ok(p) => p,
        Err(m) => return Err(caller.bad_request(&m)),
    };
    let store = caller.state.sessions().directory().store().clone();
    let target = Some(format!("org:{org_id}"));
    let updated = store
        .update_org(&org_id, &patch, &caller.actor(), caller.now)
        .await
        .answer_for(&caller, &target, &Some(org_id.clone()))?;
    caller.forget_org(&org_id);
    Ok(caller.ok(StatusCode::OK, updated.to_json()))
}

/// The fields of a PATCH: a key that is absent leaves the field; `null` clears it.
fn org_patch(fields: &Map<String, Value>) -> Result<OrgPatch, String> {
    let mut patch = OrgPatch::default();
    for (key, value) in fields {
        match (key.as_str(), value) {
            ("name", Value::String(s))
                if !s.trim().is_empty() && s.chars().count() <= 200 && super::text_ok(s) =>
            {
                patch.name = Some(s.trim().to_string())
            }
            ("max_users", Value::Null) => patch.max_users = Some(None),
            ("max_users", Value::Number(n)) => {
                let n = n.as_u64().and_then(|n| u32::try_from(n).ok());
                patch.max_users = Some(Some(n.ok_or("max_users must be a count")?));
            }
            ("allowed_roles", Value::Null) => patch.allowed_roles = Some(None),
            ("allowed_roles", Value::Array(a)) => {
                let roles: Option<Vec<String>> =
                    a.iter().map(|r| r.as_str().map(str::to_string)).collect();
                patch.allowed_roles = Some(Some(roles.ok_or("allowed_roles must be role names")?));
            }
            ("mfa", Value::String(s)) if s == "required" || s == "optional" => {
                patch.mfa_required = Some(s == "required")
            }
            ("max_grant_ttl", Value::Null) => patch.max_grant_ttl = Some(None),
            ("max_grant_ttl", Value::String(s)) => patch.max_grant_ttl = Some(Some(parse_ttl(s)?)),
            (key, _) => return Err(format!("{key}: unknown field or wrong type")),
        }
    }
    Ok(patch)
}

/// The body of `POST /orgs/{org}/approve`: optionally invite the first admin.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ApproveBody {
    invite: Option<InviteBody>,
}

pub async fn status(
    req: ApiRequest,
    Path((org_id, action)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let caller = req.authorize(&ops::ORG_STATUS).await?;
    let Some((from, to)) = transition(&action) else {
        return Err(caller.error(
            StatusCode::NOT_FOUND,
            "not_found",
            "action must be approve, reject, suspend, reactivate or offboard",
        ));
    };
    let target = Some(format!("org:{org_id}"));
    if org_id == caller.identity().org.id {
        return Err(caller.refuse_bounds(Refusal::SelfChange, target, Some(org_id)));
    }
    let mut approve: ApproveBody = if body.is_empty() {
        ApproveBody::default()
    } else {
        caller.json(&body)?
    };
    if approve.invite.is_some() && action != "approve" {
        return Err(caller.bad_request("only approve takes an invitation"));
    }
    let org = org_in_scope(&caller, &org_id).await?;
    if !from.contains(&org.status) {
        let message = format!("cannot {action} an org that is {}", org.status);
        return Err(caller.error(StatusCode::CONFLICT, "conflict", &message));
    }
    let store = caller.state.sessions().directory().store().clone();
    // The invitation is written after the approval commits: check what can be checked
    // first, so a bad invitation does not leave the org approved without one.
    if let Some(invite) = &mut approve.invite {
        if invite.email.is_none() {
            invite.email = org.contact_email.clone();
        }
        let email_ok = invite.email.as_deref().is_some_and(email_ok);
        if !email_ok || invite.roles.is_empty() {
            return Err(
                caller.bad_request("the invitation needs an email (or a contact) and roles")
            );
        }
        let defined = store.roles().await.answer(&caller)?;
        if let Some(unknown) = invite
            .roles
            .iter()
            .find(|r| !defined.iter().any(|d| &d.name == *r))
        {
            return Err(caller.bad_request(&format!("unknown role {unknown:?}")));
        }
    }
    let change = store
        .set_org_status(&org_id, to, &caller.actor(), caller.now)
        .await
        .answer_for(&caller, &target, &Some(org_id.clone()))?;
    caller.forget_org(&org_id);
    let mut out = json!({
        "org": org_id,
        "before": change.before,
        "status": change.after,
        "sessions_ended": change.sessions_ended,
        "audit_seq": change.audit_seq,
    });
    if let Some(invite) = approve.invite {
        out["invitation"] = invitations::create_invitation(&caller, &org_id, invite).await?;
    }
    Ok(caller.ok(StatusCode::OK, out))
}

/// The statuses an action applies to, and the status it sets.
fn transition(action: &str) -> Option<(&'static [OrgStatus], OrgStatus)> {
    use OrgStatus::*;
    Some(match action {
        "approve" => (&[Pending], Active),
        "reject" => (&[Pending], Offboarded),
        "suspend" => (&[Active], Suspended),
        "reactivate" => (&[Suspended], Active),
        "offboard" => (&[Active, Suspended], Offboarded),
        _ => return None,
    })
}

pub async fn roles(req: ApiRequest) -> ApiResult {
    let caller = req.authorize(&ops::ROLES_LIST).await?;
    let store = caller.state.sessions().directory().store().clone();
    let roles = store.roles().await.answer(&caller)?;
    Ok(caller.ok(StatusCode::OK, json!({ "roles": roles })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleBody {
    permissions: Vec<String>,
    #[serde(default)]
    delegable: bool,
}

pub async fn put_role(req: ApiRequest, Path(name): Path<String>, body: Bytes) -> ApiResult {
    let caller = req.authorize(&ops::ROLE_PUT).await?;
    let body: RoleBody = caller.json(&body)?;
    let word_ok = |s: &str| {
        !s.is_empty() && s.len() <= 100 && s.bytes().all(|b| b.is_ascii_graphic() && b != b',')
    };
    if !word_ok(&name) || !body.permissions.iter().all(|p| word_ok(p)) {
        return Err(
            caller.bad_request("role and permission names must be 1-100 visible characters")
        );
    }
    let role = RoleEntry {
        name,
        permissions: body.permissions,
        delegable: body.delegable,
    };
    let store = caller.state.sessions().directory().store().clone();
    // Never above one's own rights: the role's permissions, before and after, must all be
    // held by the caller; and no one redefines a role they hold (self-promotion, or
    // stripping the owner role of every owner admin at once).
    let target = Some(format!("role:{}", role.name));
    let defined = store.roles().await.answer(&caller)?;
    let held = &caller.identity().permissions;
    let current = defined.iter().find(|r| r.name == role.name);
    if caller.identity().has_role(&role.name) {
        return Err(caller.refuse_bounds(Refusal::SelfChange, target, None));
    }
    let within = |perms: &[String]| perms.iter().all(|p| held.binary_search(p).is_ok());
    if !within(&role.permissions) || current.is_some_and(|r| !within(&r.permissions)) {
        return Err(caller.refuse_bounds(Refusal::AboveOwnRights, target, None));
    }
    store
        .put_role(&role, &caller.actor(), caller.now)
        .await
        .answer(&caller)?;
    caller.state.sessions().directory().invalidate_all();
    Ok(caller.ok(StatusCode::OK, json!(role)))
}

/// Query strings as a map (for filters with optional keys).
pub type QueryMap = Query<HashMap<String, String>>;
