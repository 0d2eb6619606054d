//! Server-rendered HTML: the dashboard and the client-account pages. Every value shown
//! comes from the request, so every value goes through [`escape_html`].

use axum::extract::{OriginalUri, Path};
use axum::response::Html;
use http::HeaderMap;
use serde::Deserialize;

use super::header_text;

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
.anonymous{color:#b44d12}";

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

pub(super) async fn dashboard(headers: HeaderMap) -> Html<String> {
    let rows: String = DASHBOARD_HEADERS
        .iter()
        .map(|&(name, shown)| header_row(&headers, name, shown))
        .collect();
    let body = format!(
        "{who}\n<h2>Identity headers received</h2>\n{table}",
        who = signed_in_as(&headers),
        table = table(&rows),
    );
    page("Demo partner portal", &body)
}

/// Path parameters of `/clients/{id}` and `/clients/{id}/{*rest}`; the rest is read from
/// the raw URI instead, so it is shown exactly as received.
#[derive(Debug, Deserialize)]
pub(super) struct ClientPath {
    id: String,
}

pub(super) async fn client_account(
    Path(ClientPath { id }): Path<ClientPath>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Html<String> {
    let rows = [
        value_row("Path", Some(uri.path().to_owned())),
        header_row(&headers, "X-Partner-Account", Shown::Value),
        header_row(&headers, "X-Partner-Account-Permission", Shown::Value),
    ]
    .concat();
    let body = format!("{}\n{}", signed_in_as(&headers), table(&rows));
    page(&format!("Client account {id}"), &body)
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
         <title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n\
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
