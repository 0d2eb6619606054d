//! `/orgs/{org}/sso` (the org's OpenID Connect connection) and `/orgs/{org}/domains`
//! (its email domains for home-realm discovery). Owner admins change them; an org's
//! delegated admins may read their own org's. The client secret is never accepted or
//! returned: the connection names where it is read (`env:NAME`, `file:/path`).

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::directory::{OrgDetail, SsoConnection};
use crate::lifecycle::Refusal;
use crate::sso::{check_url, valid_domain, SecretSource};

use super::scope::org_in_scope;
use super::{ops, Answer, ApiRequest, ApiResult, Caller};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectionBody {
    issuer: String,
    client_id: String,
    /// `env:NAME` or `file:/path`.
    client_secret: String,
    #[serde(default)]
    scopes: Option<Vec<String>>,
    #[serde(default)]
    email_claim: Option<String>,
    #[serde(default)]
    roles_claim: Option<String>,
    #[serde(default)]
    role_map: Option<Map<String, Value>>,
    #[serde(default)]
    default_roles: Vec<String>,
    #[serde(default = "yes")]
    jit: bool,
    #[serde(default)]
    enforce: bool,
    #[serde(default)]
    idp_mfa: bool,
    #[serde(default)]
    mfa_acr_values: Vec<String>,
    #[serde(default)]
    userinfo: bool,
}

fn yes() -> bool {
    true
}

fn word_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= 255 && s.bytes().all(|b| b.is_ascii_graphic() && b != b'"')
}

pub async fn get(req: ApiRequest, Path(org_id): Path<String>) -> ApiResult {
    let caller = req.authorize(&ops::SSO_GET).await?;
    org_in_scope(&caller, &org_id).await?;
    let store = caller.state.sessions().directory().store().clone();
    match store.sso_connection(&org_id).await.answer(&caller)? {
        Some(c) => Ok(caller.ok(StatusCode::OK, c.to_json())),
        None => Err(caller.error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("org {org_id:?} has no SSO connection"),
        )),
    }
}

pub async fn put(req: ApiRequest, Path(org_id): Path<String>, body: Bytes) -> ApiResult {
    let caller = req.authorize(&ops::SSO_PUT).await?;
    let org = org_in_scope(&caller, &org_id).await?;
    let body: ConnectionBody = caller.json(&body)?;
    let connection = connection(&caller, &org, body)?;
    // Every role the connection can hand out must be within the org's bounds: delegable
    // and allowed in the org (the sign-in checks it again, inside its transaction).
    let store = caller.state.sessions().directory().store().clone();
    let roles = store.roles().await.answer(&caller)?;
    let target = Some(format!("org:{org_id}"));
    let named = connection
        .default_roles
        .iter()
        .chain(connection.role_map.iter().map(|(_, r)| r));
    for role in named {
        match roles.iter().find(|r| &r.name == role) {
            None => {
                return Err(caller.bad_request(&format!("unknown role {role:?}")));
            }
            Some(r) if !r.delegable => {
                return Err(caller.refuse_bounds(
                    Refusal::NotDelegable,
                    target,
                    Some(org_id.clone()),
                ))
            }
            Some(_) if !org.allows_role(role) => {
                return Err(caller.refuse_bounds(
                    Refusal::RoleNotAllowed,
                    target,
                    Some(org_id.clone()),
                ))
            }
            Some(_) => {}
        }
    }
    // The provider must answer now: a typo in the issuer is found here, not at the
    // first partner's sign-in.
    let sso = &caller.state.sso;
    sso.forget(&connection.issuer);
    if let Err(e) = sso.provider(&connection).await {
        return Err(caller.error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "discovery_failed",
            &format!("the identity provider could not be used: {}", e.detail),
        ));
    }
    let before = store
        .put_sso_connection(&connection, &caller.actor(), caller.now)
        .await
        .answer_for(&caller, &target, &Some(org_id.clone()))?;
    if let Some(old) = before.filter(|b| b.issuer != connection.issuer) {
        sso.forget(&old.issuer);
    }
    caller.forget_org(&org_id);
    let saved = store.sso_connection(&org_id).await.answer(&caller)?;
    let body = saved.map_or(Value::Null, |c| c.to_json());
    Ok(caller.ok(StatusCode::OK, body))
}

/// The connection a body describes, checked field by field (400 naming the field).
fn connection(
    caller: &Caller,
    org: &OrgDetail,
    b: ConnectionBody,
) -> Result<SsoConnection, super::ApiError> {
    let bad = |m: String| caller.bad_request(&m);
    check_url(&b.issuer).map_err(|e| bad(format!("issuer: {e}")))?;
    if !word_ok(&b.client_id) {
        return Err(bad("client_id must be 1-255 visible characters".into()));
    }
    let source =
        SecretSource::parse(&b.client_secret).map_err(|e| bad(format!("client_secret: {e}")))?;
    // Readable now, so a missing variable or file is found at once (the value is not
    // kept: it is read again at each sign-in).
    source
        .read()
        .map_err(|e| bad(format!("client_secret: {e}")))?;
    let mut scopes = b
        .scopes
        .unwrap_or_else(|| vec!["email".into(), "profile".into()]);
    scopes.retain(|s| s != "openid");
    scopes.insert(0, "openid".into());
    if scopes.len() > 20 || !scopes.iter().all(|s| word_ok(s)) {
        return Err(bad("scopes must be at most 20 visible words".into()));
    }
    let email_claim = b.email_claim.unwrap_or_else(|| "email".into());
    let claims_ok = word_ok(&email_claim) && b.roles_claim.as_deref().is_none_or(word_ok);
    if !claims_ok {
        return Err(bad("claim names must be 1-255 visible characters".into()));
    }
    let mut role_map = Vec::new();
    for (value, role) in b.role_map.unwrap_or_default() {
        match role {
            Value::String(role) if word_ok(&value) && word_ok(&role) => {
                role_map.push((value, role))
            }
            _ => return Err(bad(format!("role_map.{value}: must map to a role name"))),
        }
    }
    if !role_map.is_empty() && b.roles_claim.is_none() {
        return Err(bad(
            "role_map needs roles_claim: the claim its keys are looked up in".into(),
        ));
    }
    let default_roles = super::role_list(b.default_roles, 0).map_err(|m| bad(m.into()))?;
    if b.mfa_acr_values.len() > 20 || !b.mfa_acr_values.iter().all(|v| word_ok(v)) {
        return Err(bad("mfa_acr_values must be at most 20 visible words".into()));
    }
    Ok(SsoConnection {
        org_id: org.id.clone(),
        issuer: b.issuer,
        client_id: b.client_id,
        client_secret: source.describe(),
        scopes,
        email_claim,
        roles_claim: b.roles_claim,
        role_map,
        default_roles,
        jit: b.jit,
        enforce: b.enforce,
        idp_mfa: b.idp_mfa,
        mfa_acr_values: b.mfa_acr_values,
        userinfo: b.userinfo,
        created_at: 0,
        updated_at: 0,
    })
}

pub async fn delete(req: ApiRequest, Path(org_id): Path<String>) -> ApiResult {
    let caller = req.authorize(&ops::SSO_DELETE).await?;
    org_in_scope(&caller, &org_id).await?;
    let store = caller.state.sessions().directory().store().clone();
    let target = Some(format!("org:{org_id}"));
    let deleted = store
        .delete_sso_connection(&org_id, &caller.actor(), caller.now)
        .await
        .answer_for(&caller, &target, &Some(org_id.clone()))?;
    if !deleted {
        return Err(caller.error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("org {org_id:?} has no SSO connection"),
        ));
    }
    caller.forget_org(&org_id);
    Ok(caller.ok(StatusCode::OK, json!({ "org": org_id, "deleted": true })))
}

pub async fn domains(req: ApiRequest, Path(org_id): Path<String>) -> ApiResult {
    let caller = req.authorize(&ops::DOMAINS_LIST).await?;
    org_in_scope(&caller, &org_id).await?;
    let store = caller.state.sessions().directory().store().clone();
    let list = store.org_domains(&org_id).await.answer(&caller)?;
    Ok(caller.ok(StatusCode::OK, json!({ "org": org_id, "domains": list })))
}

pub async fn add_domain(
    req: ApiRequest,
    Path((org_id, domain)): Path<(String, String)>,
) -> ApiResult {
    let caller = req.authorize(&ops::DOMAIN_ADD).await?;
    org_in_scope(&caller, &org_id).await?;
    let domain = domain.trim().to_ascii_lowercase();
    if !valid_domain(&domain) {
        return Err(caller.bad_request("not a domain name (like acme.example)"));
    }
    let store = caller.state.sessions().directory().store().clone();
    let target = Some(format!("org:{org_id}"));
    let added = store
        .add_org_domain(&org_id, &domain, &caller.actor(), caller.now)
        .await
        .answer_for(&caller, &target, &Some(org_id.clone()))?;
    let status = if added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(caller.ok(
        status,
        json!({ "org": org_id, "domain": domain, "added": added }),
    ))
}

pub async fn remove_domain(
    req: ApiRequest,
    Path((org_id, domain)): Path<(String, String)>,
) -> ApiResult {
    let caller = req.authorize(&ops::DOMAIN_REMOVE).await?;
    org_in_scope(&caller, &org_id).await?;
    let domain = domain.trim().to_ascii_lowercase();
    let store = caller.state.sessions().directory().store().clone();
    let target = Some(format!("org:{org_id}"));
    let removed = store
        .remove_org_domain(&org_id, &domain, &caller.actor(), caller.now)
        .await
        .answer_for(&caller, &target, &Some(org_id.clone()))?;
    if !removed {
        return Err(caller.error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("org {org_id:?} has no domain {domain:?}"),
        ));
    }
    Ok(caller.ok(
        StatusCode::OK,
        json!({ "org": org_id, "domain": domain, "removed": true }),
    ))
}
