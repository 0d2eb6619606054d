//! Client-account grants (seed: partner employee access to client accounts) and accounts.

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::AccountLevel;
use crate::directory::data::AccountEntry;
use crate::directory::GrantChange;

use super::scope::{org_in_scope, user_in_scope, user_to_manage};
use super::users::identity_json;
use super::{ops, parse_time, rfc3339, Answer, ApiRequest, ApiResult};

pub async fn list(req: ApiRequest, Path(user_id): Path<String>) -> ApiResult {
    let caller = req.authorize(&ops::GRANTS_LIST).await?;
    let identity = user_in_scope(&caller, &user_id).await?;
    let body = identity_json(&identity);
    Ok(caller.ok(
        StatusCode::OK,
        json!({ "user_id": user_id, "grants": body["grants"] }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantBody {
    /// view | standard | admin
    permission: String,
    /// RFC 3339 or Unix seconds; absent or null = no expiry.
    #[serde(default)]
    expires: Value,
}

pub async fn put(
    req: ApiRequest,
    Path((user_id, account)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let caller = req.authorize(&ops::GRANT_PUT).await?;
    let body: GrantBody = caller.json(&body)?;
    let Some(level) = AccountLevel::parse(&body.permission) else {
        return Err(caller.bad_request("permission must be view, standard or admin"));
    };
    let expires = match &body.expires {
        Value::Null => None,
        v => match parse_time(v) {
            Some(t) if t > caller.now => Some(t),
            Some(_) => return Err(caller.bad_request("expires must be in the future")),
            None => return Err(caller.bad_request("expires must be RFC 3339 or Unix seconds")),
        },
    };
    let identity = user_to_manage(&caller, &user_id).await?;
    let org = org_in_scope(&caller, &identity.org.id).await?;
    let target = Some(format!("grant:{user_id}/{account}"));
    let org_ref = Some(org.id.clone());
    let global =
        i64::try_from(caller.ctx.config.lifecycle.max_grant_ttl.as_secs()).unwrap_or(i64::MAX);
    if let Err(refusal) = caller
        .admin()
        .check_grant(&org, &account, level, expires, caller.now, global)
    {
        return Err(caller.refuse_bounds(refusal, target, org_ref));
    }
    let change = GrantChange {
        user_id: user_id.clone(),
        account_id: account.clone(),
        level,
        expires_at: expires,
    };
    let store = caller.state.sessions().directory().store().clone();
    let before = store
        .put_grant(&change, &caller.actor(), caller.now)
        .await
        .answer_for(&caller, &target, &org_ref)?;
    caller.forget_user(&user_id);
    let before = before
        .map(|g| json!({"permission": g.level.as_str(), "expires": g.expires_at.map(rfc3339)}));
    Ok(caller.ok(
        StatusCode::OK,
        json!({
            "user_id": user_id,
            "account": account,
            "permission": level.as_str(),
            "expires": expires.map(rfc3339),
            "before": before,
        }),
    ))
}

pub async fn revoke(
    req: ApiRequest,
    Path((user_id, account)): Path<(String, String)>,
) -> ApiResult {
    let caller = req.authorize(&ops::GRANT_REVOKE).await?;
    let identity = user_to_manage(&caller, &user_id).await?;
    let target = Some(format!("grant:{user_id}/{account}"));
    let org_ref = Some(identity.org.id.clone());
    // A delegated admin revokes only what they could have given.
    if !caller.owner {
        let own = identity.grant(&account).map(|g| g.level);
        let held = caller
            .identity()
            .grant(&account)
            .filter(|g| g.expires_at.is_none_or(|t| t > caller.now))
            .map(|g| g.level);
        if own.is_some_and(|level| held.is_none_or(|h| h < level)) {
            return Err(caller.refuse_bounds(
                crate::lifecycle::Refusal::GrantAboveOwn,
                target,
                org_ref,
            ));
        }
    }
    let store = caller.state.sessions().directory().store().clone();
    let grant = store
        .revoke_grant(&user_id, &account, &caller.actor(), caller.now)
        .await
        .answer_for(&caller, &target, &org_ref)?;
    caller.forget_user(&user_id);
    Ok(caller.ok(
        StatusCode::OK,
        json!({
            "user_id": user_id,
            "account": account,
            "revoked": {"permission": grant.level.as_str(), "expires": grant.expires_at.map(rfc3339)},
        }),
    ))
}

pub async fn accounts(req: ApiRequest) -> ApiResult {
    let caller = req.authorize(&ops::ACCOUNTS_LIST).await?;
    let store = caller.state.sessions().directory().store().clone();
    let accounts = store.accounts().await.answer(&caller)?;
    Ok(caller.ok(StatusCode::OK, json!({ "accounts": accounts })))
}

pub async fn put_account(req: ApiRequest, body: Bytes) -> ApiResult {
    let caller = req.authorize(&ops::ACCOUNT_PUT).await?;
    let account: AccountEntry = caller.json(&body)?;
    let id_ok = !account.id.is_empty()
        && account.id.len() <= 128
        && account.id != "."
        && account.id != ".."
        && account
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    let name_ok = !account.name.trim().is_empty()
        && account.name.chars().count() <= 200
        && super::text_ok(&account.name);
    if !id_ok || !name_ok {
        return Err(caller.bad_request(
            "id must be 1-128 characters A-Z, a-z, 0-9, '.', '_' or '-' (not . or ..); name 1-200 characters",
        ));
    }
    let store = caller.state.sessions().directory().store().clone();
    store
        .put_account(&account, &caller.actor(), caller.now)
        .await
        .answer(&caller)?;
    Ok(caller.ok(StatusCode::OK, json!(account)))
}
