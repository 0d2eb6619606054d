//! Server-rendered HTML: the role dashboards and the client-account pages. Every value
//! shown comes from the request, so every value goes through [`escape_html`].

use axum::extract::{OriginalUri, Path, State};
use axum::response::{Html, IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;

use super::assertion::AssertionReport;
use super::dashboards::{dashboard_for, Dashboard};
use super::identity::Identity;
use super::{header_text, PortalState};

const STYLE: &str = "\
body{margin:0;font-family:system-ui,-apple-system,'Segoe UI',sans-serif;background:#f4f5f7;color:#1f2933}\
main{max-width:52rem;margin:2rem auto;padding:1.5rem 2rem;background:#fff;border-radius:8px;\
box-shadow:0 1px 3px rgba(0,0,0,.12)}\
h1{margin-top:0;font-size:1.5rem}\
h2{margin-top:1.5rem;font-size:1.1rem}\
nav{margin-bottom:1rem;font-size:.9rem}\
table{width:100%;border-collapse:collapse}\
th,td{padding:.4rem .6rem;border-bottom:1px solid #e4e7eb;text-align:left;vertical-align:top}\
tbody th{font-weight:600;white-space:nowrap}\
code{word-break:break-all}\
.absent{color:#9aa5b1;font-style:italic}\
.anonymous{color:#b44d12}\
.assertion.verified{color:#1f7a3a}\
.assertion.failed{color:#b42318}\
section{margin:1rem 0}";

/// How the dashboard shows a header: its value, or only whether it arrived (the signed
/// assertion is long and not meant for reading).
#[derive(Clone, Copy)]
enum Shown {
    Value,
    Presence,
}

const DASHBOARD_HEADERS: &[(&str, Shown)] = &[
    ("X-Partner-User", Shown::Value),
    ("X-Partner-User-Id", Shown::Value),
    ("X-Partner-Org", Shown::Value),
    ("X-Partner-Org-Type", Shown::Value),
    ("X-Partner-Roles", Shown::Value),
    ("X-Partner-Account", Shown::Value),
    ("X-Partner-Account-Permission", Shown::Value),
    ("X-Partner-Assertion", Shown::Presence),
    ("X-Request-Id", Shown::Value),
    ("X-Forwarded-For", Shown::Value),
    ("X-Forwarded-Proto", Shown::Value),
    ("X-Forwarded-Host", Shown::Value),
];

/// `/` and `/dashboard`: the dashboard for the caller's roles. With `--jwks-url`, only a
/// verified assertion gets in, and the identity shown is the signed one.
pub(super) async fn dashboard(State(state): State<PortalState>, headers: HeaderMap) -> Response {
    let assertion = state.check_assertion(&headers).await;
    let identity = match &assertion {
        Some(report) if !report.verified => return refused(report),
        Some(report) => report.claims.as_ref().map(Identity::from_claims),
        None => Identity::from_headers(&headers),
    };
    let status = assertion_line(assertion.as_ref());
    let received = format!(
        "<h2>Identity headers received</h2>\n{}",
        table(&dashboard_rows(&headers))
    );
    let html = match identity {
        Some(identity) => role_dashboard(&identity, &status, &received),
        None => not_through_gateway(&received),
    };
    html.into_response()
}

fn dashboard_rows(headers: &HeaderMap) -> String {
    DASHBOARD_HEADERS
        .iter()
        .map(|&(name, shown)| header_row(headers, name, shown))
        .collect()
}

fn role_dashboard(identity: &Identity, status: &str, received: &str) -> Html<String> {
    let dashboard = dashboard_for(&identity.roles);
    let body = format!(
        "{status}\n{who}\n<section data-dashboard=\"{role}\">\n<p>{intro}</p>\n{roles}{panels}{extra}</section>\n{received}",
        who = signed_in(identity),
        role = escape_html(dashboard.role),
        intro = escape_html(dashboard.intro),
        roles = roles_line(&identity.roles),
        panels = panels(dashboard),
        extra = extra_panel(dashboard, identity),
    );
    page(dashboard.heading, &body)
}

fn not_through_gateway(received: &str) -> Html<String> {
    let body = format!(
        "<section data-dashboard=\"none\">\n<p class=\"who anonymous\">anonymous (no X-Partner-User)</p>\n\
         <p>This request did not come through the gateway: it carries no identity headers, \
         so the portal cannot tell who you are or which dashboard is yours. \
         Open the portal through partnergate and sign in.</p>\n</section>\n{received}"
    );
    page("Not signed in through the gateway", &body)
}

/// 403 for a portal that trusts only signed identity.
fn refused(report: &AssertionReport) -> Response {
    let reason = report.error.as_deref().unwrap_or("assertion not verified");
    let body = format!(
        "<section data-dashboard=\"refused\">\n<p class=\"assertion failed\">assertion not verified: {}</p>\n\
         <p>This portal accepts only requests carrying a valid signed identity assertion \
         from the gateway.</p>\n</section>",
        escape_html(reason)
    );
    (
        StatusCode::FORBIDDEN,
        page("Signed identity required", &body),
    )
        .into_response()
}

fn assertion_line(report: Option<&AssertionReport>) -> String {
    match report {
        Some(report) if report.verified => {
            "<p class=\"assertion verified\">assertion verified</p>".to_owned()
        }
        Some(report) => format!(
            "<p class=\"assertion failed\">assertion not verified: {}</p>",
            escape_html(report.error.as_deref().unwrap_or_default())
        ),
        None => "<p class=\"assertion absent\">assertion not checked (the portal runs without --jwks-url)</p>"
            .to_owned(),
    }
}

fn signed_in(identity: &Identity) -> String {
    let org = match (&identity.org, &identity.org_type) {
        (Some(org), Some(kind)) => format!(
            " of <strong>{}</strong> ({})",
            escape_html(org),
            escape_html(kind)
        ),
        (Some(org), None) => format!(" of <strong>{}</strong>", escape_html(org)),
        _ => String::new(),
    };
    format!(
        "<p class=\"who\">Signed in as <strong>{}</strong>{org}</p>",
        escape_html(&identity.user)
    )
}

fn roles_line(roles: &[String]) -> String {
    let roles = if roles.is_empty() {
        "none".to_owned()
    } else {
        escape_html(&roles.join(", "))
    };
    format!("<p class=\"roles\">Roles: {roles}</p>\n")
}

fn panels(dashboard: &Dashboard) -> String {
    dashboard
        .panels
        .iter()
        .map(|(title, items)| {
            let items: String = items
                .iter()
                .map(|item| format!("<li>{}</li>", escape_html(item)))
                .collect();
            format!("<h2>{}</h2>\n<ul>{items}</ul>\n", escape_html(title))
        })
        .collect()
}

/// What only some dashboards show, built from the caller's identity.
fn extra_panel(dashboard: &Dashboard, identity: &Identity) -> String {
    match (dashboard.role, &identity.org) {
        ("referral-partner", Some(org)) => format!(
            "<p class=\"referral-link\">Your link: <code>/r/{}</code></p>\n",
            escape_html(org)
        ),
        ("owner-admin" | "partner-admin", _) => {
            "<p><a href=\"/.partnergate/admin/\">Open the admin console</a></p>\n".to_owned()
        }
        _ => String::new(),
    }
}

/// Path parameters of `/clients/{id}` and `/clients/{id}/{*rest}`; the rest is read from
/// the raw URI instead, so it is shown exactly as received.
#[derive(Debug, Deserialize)]
pub(super) struct ClientPath {
    id: String,
}

pub(super) async fn client_account(
    State(state): State<PortalState>,
    Path(ClientPath { id }): Path<ClientPath>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let assertion = state.check_assertion(&headers).await;
    if let Some(report) = assertion.as_ref().filter(|report| !report.verified) {
        return refused(report);
    }
    let rows = [
        value_row("Path", Some(uri.path().to_owned())),
        header_row(&headers, "X-Partner-Account", Shown::Value),
        header_row(&headers, "X-Partner-Account-Permission", Shown::Value),
    ]
    .concat();
    let body = format!(
        "{}\n{}\n{}",
        assertion_line(assertion.as_ref()),
        signed_in_as(&headers),
        table(&rows)
    );
    page(&format!("Client account {id}"), &body).into_response()
}

/// A portal section (`/deals`, `/referrals`, `/reports`): which section, and who asked.
/// The legacy portal shows every section to everyone; the gateway's policy decides.
pub(super) async fn section(
    State(state): State<PortalState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let assertion = state.check_assertion(&headers).await;
    if let Some(report) = assertion.as_ref().filter(|report| !report.verified) {
        return refused(report);
    }
    let name = uri
        .path()
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let body = format!(
        "<section data-section=\"{}\">\n{}\n{}\n{}</section>",
        escape_html(&name),
        assertion_line(assertion.as_ref()),
        signed_in_as(&headers),
        table(&header_row(&headers, "X-Partner-Org-Type", Shown::Value))
    );
    page(&format!("Section {name}"), &body).into_response()
}

fn signed_in_as(headers: &HeaderMap) -> String {
    match header_text(headers, "X-Partner-User") {
        Some(user) => format!(
            "<p class=\"who\">Signed in as <strong>{}</strong></p>",
            escape_html(&user)
        ),
        None => "<p class=\"who anonymous\">anonymous (no X-Partner-User)</p>".to_owned(),
    }
}

fn header_row(headers: &HeaderMap, name: &str, shown: Shown) -> String {
    let value = header_text(headers, name);
    match shown {
        Shown::Value => value_row(name, value),
        Shown::Presence => value_row(name, value.map(|_| "present".to_owned())),
    }
}

fn value_row(label: &str, value: Option<String>) -> String {
    let cell = match value {
        Some(value) => format!("<td><code>{}</code></td>", escape_html(&value)),
        None => "<td class=\"absent\">absent</td>".to_owned(),
    };
    format!(
        "<tr><th scope=\"row\">{}</th>{cell}</tr>\n",
        escape_html(label)
    )
}

fn table(rows: &str) -> String {
    format!(
        "<table>\n<thead><tr><th>Header</th><th>Value</th></tr></thead>\n<tbody>\n{rows}</tbody>\n</table>"
    )
}

fn page(title: &str, body: &str) -> Html<String> {
    let title = escape_html(title);
    Html(format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title} · Demo partner portal</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n\
         <nav><a href=\"/dashboard\">Dashboard</a></nav>\n<h1>{title}</h1>\n{body}\n\
         </main>\n</body>\n</html>\n"
    ))
}

/// Escapes text for an HTML element body or a double- or single-quoted attribute.
fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            _ => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_html_neutralises_markup() {
        let cases = [
            ("", ""),
            ("alice@acme.example", "alice@acme.example"),
            ("<script>", "&lt;script&gt;"),
            ("a & b", "a &amp; b"),
            ("\"quoted\" 'single'", "&quot;quoted&quot; &#39;single&#39;"),
            ("&lt;", "&amp;lt;"),
            ("caf\u{e9} \u{fffd}", "caf\u{e9} \u{fffd}"),
        ];
        for (input, expected) in cases {
            assert_eq!(escape_html(input), expected, "{input:?}");
        }
    }
}
