use axum::http::{header, StatusCode};
use axum::response::Response;

use super::*;

fn header_of(response: &Response, name: header::HeaderName) -> &str {
    response
        .headers()
        .get(&name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header"))
}

#[tokio::test]
async fn assets_carry_the_strict_csp_and_no_store() {
    for (response, kind) in [
        (script().await, "text/javascript"),
        (style().await, "text/css"),
    ] {
        assert_eq!(response.status(), StatusCode::OK);
        assert!(header_of(&response, header::CONTENT_TYPE).starts_with(kind));
        assert_eq!(header_of(&response, header::CACHE_CONTROL), "no-store");
        assert_eq!(
            header_of(&response, header::X_CONTENT_TYPE_OPTIONS),
            "nosniff"
        );
        assert_eq!(
            header_of(&response, header::CONTENT_SECURITY_POLICY),
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
             img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        );
    }
}

#[test]
fn the_page_loads_only_its_own_files_and_has_no_inline_code() {
    let html = HTML.to_ascii_lowercase();
    assert!(html.contains(&format!("<script src=\"{SCRIPT_PATH}\" defer></script>")));
    assert!(html.contains(&format!("href=\"{STYLE_PATH}\"")));
    assert_eq!(html.matches("<script").count(), 1, "one script, by src");
    for forbidden in [
        "<style",
        " style=",
        "javascript:",
        "http://",
        "https://",
        "//cdn",
    ] {
        assert!(!html.contains(forbidden), "{forbidden} in the page");
    }
    // No event-handler attributes (onclick=, onload=, …): the CSP would block them anyway.
    let inline_handler = html
        .split(|c: char| c.is_whitespace())
        .any(|w| w.starts_with("on") && w.contains('='));
    assert!(!inline_handler, "inline event handler in the page");
}

#[test]
fn the_script_renders_text_never_markup() {
    for sink in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
        "setTimeout('",
        "'style'",
    ] {
        assert!(!SCRIPT.contains(sink), "{sink} in console.js");
    }
    assert!(SCRIPT.contains("credentials: 'same-origin'"));
    assert!(SCRIPT.contains("const API = '/.partnergate/api/v1';"));
}

#[test]
fn admin_permissions_open_the_console() {
    let cases: &[(&[&str], bool)] = &[
        (&["users:manage"], true),
        (&["orgs:manage"], true),
        (&["audit:view"], true),
        (&["dashboard:view", "reports:view", "users:manage"], true),
        (&["dashboard:view", "reports:view"], false),
        (&["accounts:manage", "roles:manage"], false),
        (&[], false),
    ];
    for (permissions, admin) in cases {
        let owned: Vec<String> = permissions.iter().map(|p| p.to_string()).collect();
        assert_eq!(is_admin(&owned), *admin, "{permissions:?}");
    }
}

#[tokio::test]
async fn the_forbidden_page_escapes_the_email() {
    let response = not_an_admin("<b>x</b>@example.com");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(header_of(&response, header::CACHE_CONTROL), "no-store");
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .expect("body");
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("&lt;b&gt;x&lt;/b&gt;@example.com"), "{body}");
    assert!(!body.contains("<b>x"), "{body}");
}
