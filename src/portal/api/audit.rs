//! The access review with reviewer decisions, and the audit log with its JSON-lines export.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::directory::{AuditFilter, ReviewDecision};
use crate::lifecycle::Refusal;

use super::super::{with_outcome, PortalOutcome};
use super::orgs::QueryMap;
use super::scope::user_to_manage;
use super::users::review_params;
use super::{ops, parse_time, Answer, ApiRequest, ApiResult};

pub async fn review(req: ApiRequest) -> ApiResult {
    let caller = req.authorize(&ops::REVIEW_GET).await?;
    let params = review_params(&caller);
    let store = caller.state.sessions().directory().store().clone();
    let rows = store.review(&params).await.answer(&caller)?;
    let decisions = store.review_decisions().await.answer(&caller)?;
    let mut decisions: HashMap<String, _> = decisions
        .into_iter()
        .map(|d| (d.user_id.clone(), d))
        .collect();
    let scope = caller.admin().scope();
    let users: Vec<Value> = rows
        .iter()
        .filter(|r| scope.is_none_or(|own| r.org_id == own))
        .map(|r| {
            let mut v = r.to_json();
            v["flag_names"] = json!(r.flag_names());
            v["last_decision"] = json!(decisions.remove(&r.user_id));
            v
        })
        .collect();
    Ok(caller.ok(
        StatusCode::OK,
        json!({ "generated_at": caller.now, "users": users }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    decision: String,
    note: Option<String>,
}

pub async fn decide(req: ApiRequest, Path(user_id): Path<String>, body: Bytes) -> ApiResult {
    let caller = req.authorize(&ops::REVIEW_DECIDE).await?;
    let body: DecisionBody = caller.json(&body)?;
    let Some(decision) = ReviewDecision::parse(&body.decision) else {
        return Err(caller.bad_request("decision must be keep or revoke"));
    };
    if body.note.as_ref().is_some_and(|n| n.chars().count() > 1000) {
        return Err(caller.bad_request("note must be at most 1000 characters"));
    }
    let identity = user_to_manage(&caller, &user_id).await?;
    let store = caller.state.sessions().directory().store().clone();
    let target = Some(format!("user:{user_id}"));
    store
        .record_review_decision(
            &user_id,
            decision,
            body.note.as_deref(),
            &caller.actor(),
            caller.now,
        )
        .await
        .answer_for(&caller, &target, &Some(identity.org.id.clone()))?;
    if decision == ReviewDecision::Revoke {
        caller.forget_user(&user_id);
    }
    Ok(caller.ok(
        StatusCode::OK,
        json!({ "user_id": user_id, "decision": decision.as_str(), "note": body.note }),
    ))
}

pub async fn list(req: ApiRequest, axum::extract::Query(q): QueryMap) -> ApiResult {
    let caller = req.authorize(&ops::AUDIT_LIST).await?;
    let mut filter = match audit_filter(&q) {
        Ok(f) => f,
        Err(m) => return Err(caller.bad_request(&m)),
    };
    // A delegated admin sees their own org's records only.
    if let Some(own) = caller.admin().scope() {
        if filter.org_id.as_deref().is_some_and(|o| o != own) {
            let org = filter.org_id.clone();
            return Err(caller.refuse_bounds(Refusal::OtherOrg, None, org));
        }
        filter.org_id = Some(own.to_string());
    }
    let store = caller.state.sessions().directory().store().clone();
    let records = store.audit_list(&filter).await.answer(&caller)?;
    let jsonl = q.get("format").is_some_and(|f| f == "jsonl")
        || req
            .headers
            .get(header::ACCEPT)
            .and_then(|a| a.to_str().ok())
            .is_some_and(|a| a.contains("application/x-ndjson"));
    if jsonl {
        let mut out = String::new();
        for r in &records {
            out.push_str(&serde_json::to_string(r).unwrap_or_default());
            out.push('\n');
        }
        let response = (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/x-ndjson")],
            out,
        )
            .into_response();
        return Ok(with_outcome(
            response,
            PortalOutcome {
                user: Some(caller.identity().email.clone()),
                org: Some(caller.identity().org.id.clone()),
                ..PortalOutcome::allow()
            },
        ));
    }
    let next = records.last().map(|r| r.seq);
    Ok(caller.ok(
        StatusCode::OK,
        json!({ "records": records, "next_after": next }),
    ))
}

fn audit_filter(q: &HashMap<String, String>) -> Result<AuditFilter, String> {
    let mut filter = AuditFilter::default();
    for (key, value) in q {
        if !super::text_ok(value) {
            return Err(format!("{key}: control characters are not allowed"));
        }
        let time = || {
            let v = value
                .parse::<i64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::String(value.clone()));
            parse_time(&v).ok_or_else(|| format!("{key} must be RFC 3339 or Unix seconds"))
        };
        match key.as_str() {
            "since" => filter.since = Some(time()?),
            "until" => filter.until = Some(time()?),
            "actor" => filter.actor = Some(value.clone()),
            "actor_email" => filter.actor_email = Some(value.clone()),
            "org" => filter.org_id = Some(value.clone()),
            "action" => filter.action_prefix = Some(value.clone()),
            "after" => {
                filter.after_seq = Some(value.parse().map_err(|_| "after must be a seq number")?)
            }
            "limit" => filter.limit = Some(value.parse().map_err(|_| "limit must be a count")?),
            "format" if value == "jsonl" || value == "json" => {}
            _ => return Err(format!("unknown filter {key:?}")),
        }
    }
    Ok(filter)
}

/// `GET /usage`: request counts per org, user and route (see [`crate::usage`]).
pub async fn usage(req: ApiRequest, axum::extract::Query(q): QueryMap) -> ApiResult {
    let caller = req.authorize(&ops::USAGE_GET).await?;
    let mut org = None;
    let mut user = None;
    let mut window = crate::usage::UsageWindow::Week;
    for (key, value) in &q {
        if !super::text_ok(value) {
            return Err(caller.bad_request("control characters are not allowed"));
        }
        match key.as_str() {
            "window" => match value.parse() {
                Ok(w) => window = w,
                Err(_) => return Err(caller.bad_request("window must be 1d, 7d or 30d")),
            },
            "org" => org = Some(value.clone()),
            "user" => user = Some(value.clone()),
            _ => return Err(caller.bad_request(&format!("unknown parameter {key:?}"))),
        }
    }
    // A delegated admin sees their own org's usage only.
    if let Some(own) = caller.admin().scope() {
        if org.as_deref().is_some_and(|o| o != own) {
            return Err(caller.refuse_bounds(Refusal::OtherOrg, None, org));
        }
        org = Some(own.to_string());
    }
    let store = caller.state.sessions().directory().store().clone();
    let report = crate::usage::usage_report(
        store.as_ref(),
        org.as_deref(),
        user.as_deref(),
        window,
        caller.now,
    )
    .await
    .answer(&caller)?;
    Ok(caller.ok(StatusCode::OK, json!(report)))
}
