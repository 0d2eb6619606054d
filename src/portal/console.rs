//! The web console at `/.partnergate/admin/`: one HTML page, one script
//! and one stylesheet, embedded in the binary. The page is only a shell; the script does
//! everything through the admin API (`/.partnergate/api/v1/…`) with the session cookie, so
//! the console has exactly the API's rights and the API alone enforces them (an owner admin
//! sees every org, a delegated partner admin their own). The page itself checks only that
//! the visitor is signed in (else 303 to the login page) and holds an admin permission
//! (else a 403 page), so a partner user is told plainly instead of meeting API refusals.
//!
//! The strict CSP (no inline script or style, nothing from elsewhere) and the script's
//! text-only rendering keep attacker-influenced data — an org name from the public
//! register form — from ever running as code.

use std::sync::Arc;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};

use super::login::see_other;
use super::pages::{document, escape};
use super::{signed_in, unavailable, with_outcome, PortalContext, PortalOutcome, PortalState};
use super::{Verdict, LOGIN_PATH};

pub const PATH: &str = "/.partnergate/admin/";
const SCRIPT_PATH: &str = "/.partnergate/admin/console.js";
const STYLE_PATH: &str = "/.partnergate/admin/console.css";

const HTML: &str = include_str!("console/index.html");
const SCRIPT: &str = include_str!("console/console.js");
const STYLE: &str = include_str!("console/console.css");

pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Any one of these opens the console (the permissions of the admin API's operations).
pub const ADMIN_PERMISSIONS: &[&str] = &["users:manage", "orgs:manage", "audit:view"];

pub fn router() -> Router {
    Router::new()
        .route("/.partnergate/admin", get(add_slash))
        .route(PATH, get(page))
        .route(SCRIPT_PATH, get(script))
        .route(STYLE_PATH, get(style))
}

async fn add_slash() -> Response {
    with_outcome(see_other(PATH), PortalOutcome::allow())
}

/// The console page for a signed-in admin; 303 to the login page without a session.
async fn page(
    Extension(state): Extension<Arc<PortalState>>,
    Extension(ctx): Extension<PortalContext>,
    headers: HeaderMap,
) -> Response {
    let entry = match signed_in(&state, &ctx, &headers).await {
        Ok(Some((_, entry))) => entry,
        Ok(None) => {
            let login = format!("{LOGIN_PATH}?rd={PATH}");
            let outcome = PortalOutcome::allow().with(Verdict::Unauthenticated, "no_session");
            return with_outcome(see_other(&login), outcome);
        }
        Err(e) => return unavailable(&ctx, &e),
    };
    let identity = &entry.identity;
    let outcome = PortalOutcome {
        user: Some(identity.email.clone()),
        org: Some(identity.org.id.clone()),
        ..PortalOutcome::allow()
    };
    if !is_admin(&identity.permissions) {
        let outcome = PortalOutcome {
            verdict: Verdict::Deny,
            reason: Some("permission"),
            ..outcome
        };
        return with_outcome(not_an_admin(&identity.email), outcome);
    }
    with_outcome(asset("text/html; charset=utf-8", HTML), outcome)
}

pub fn is_admin(permissions: &[String]) -> bool {
    permissions
        .iter()
        .any(|p| ADMIN_PERMISSIONS.contains(&p.as_str()))
}

/// The 403 page for a signed-in user without an admin permission.
fn not_an_admin(email: &str) -> Response {
    let body = format!(
        "<h1>Not an administrator</h1><p>You are signed in as {}. The console is for owner \
         admins and the partner admins of each organisation; your role does not include \
         managing users, organisations or the audit log.</p><p>Ask your partner admin if \
         you need access.</p><p><a href=\"/\">Go to your dashboard</a></p>\
         <form method=\"post\" action=\"/.partnergate/logout\">\
         <button type=\"submit\">Sign out</button></form>",
        escape(email)
    );
    let mut response = document(StatusCode::FORBIDDEN, "Not an administrator", &body);
    no_store(response.headers_mut());
    response
}

async fn script() -> Response {
    with_outcome(
        asset("text/javascript; charset=utf-8", SCRIPT),
        PortalOutcome::allow(),
    )
}

async fn style() -> Response {
    with_outcome(
        asset("text/css; charset=utf-8", STYLE),
        PortalOutcome::allow(),
    )
}

/// An embedded file with the console's headers. The script and stylesheet hold no data,
/// so they are served to anyone; `no-store` keeps a new build from meeting an old script.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    no_store(headers);
    response
}

fn no_store(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

#[cfg(test)]
mod tests;
