//! Server-rendered HTML for the gateway's pages: no JavaScript, everything escaped.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};

const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const STYLE: &str = "body{font-family:system-ui,sans-serif;background:#f4f5f7;margin:0}\
main{max-width:360px;margin:10vh auto;background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 4px #0002}\
h1{font-size:1.3rem;margin-top:0}label{display:block;margin:.8rem 0 .2rem}\
input[type=email],input[type=password]{width:100%;padding:.5rem;box-sizing:border-box}\
button{margin-top:1.2rem;width:100%;padding:.6rem;background:#1f4fd1;color:#fff;border:0;border-radius:4px}\
.error{background:#fdecea;color:#8a1c13;padding:.6rem;border-radius:4px}\
.notice{background:#e8f4ea;color:#1d5c2a;padding:.6rem;border-radius:4px}\
form.inline{display:inline}form.inline button{width:auto;margin:0 0 0 .5rem;padding:.2rem .6rem}\
input[type=text]{width:100%;padding:.5rem;box-sizing:border-box}";

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub(super) fn document(status: StatusCode, title: &str, body: &str) -> Response {
    document_with_head(status, title, "", body)
}

fn document_with_head(status: StatusCode, title: &str, head: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">{head}\
<title>{}</title><style>{STYLE}</style></head><body><main>{body}</main></body></html>",
        escape(title)
    );
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// On the way to an org's identity provider: a page that goes on at once (a refresh,
/// not a redirect, because the login form's `form-action 'self'` would block a form
/// submission that redirects to another origin), with a link for a browser that does
/// not follow refreshes.
pub fn onward(url: &str) -> Response {
    let url = escape(url);
    let head = format!("<meta http-equiv=\"refresh\" content=\"0;url={url}\">");
    let body = format!(
        "<h1>Continuing to your organisation's sign-in</h1>\
<p><a id=\"sso-continue\" href=\"{url}\">Continue</a></p>"
    );
    document_with_head(StatusCode::OK, "Partner sign-in", &head, &body)
}

/// The sign-in form.
pub fn login(
    status: StatusCode,
    csrf: &str,
    rd: &str,
    email: Option<&str>,
    error: Option<&str>,
    link: Option<(&str, &str)>,
) -> Response {
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e)))
        .unwrap_or_default();
    let link = link
        .map(|(href, text)| {
            format!(
                "<p><a id=\"sso-link\" href=\"{}\">{}</a></p>",
                escape(href),
                escape(text)
            )
        })
        .unwrap_or_default();
    let hidden = format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">\
<input type=\"hidden\" name=\"rd\" value=\"{}\">",
        escape(csrf),
        escape(rd)
    );
    // The email first: an email of an org with its own identity provider goes there;
    // the others get the password field next.
    let form = match email {
        None => format!(
            "<form method=\"post\" action=\"/.partnergate/login\">{hidden}\
<label for=\"email\">Work email</label>\
<input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"username\" required autofocus>\
<button id=\"continue\" type=\"submit\">Continue</button></form>"
        ),
        Some(email) => format!(
            "<form method=\"post\" action=\"/.partnergate/login\">{hidden}\
<label for=\"email\">Work email</label>\
<input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"username\" required value=\"{}\">\
<label for=\"password\">Password</label>\
<input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required autofocus>\
<button type=\"submit\">Sign in</button></form>\
<p><a href=\"/.partnergate/login?rd={}\">Use another email</a></p>",
            escape(email),
            escape(&crate::sso::form_value(rd)),
        ),
    };
    let body = format!(
        "<h1>Partner sign-in</h1>{error}{link}{form}\
<p><a href=\"/.partnergate/reset\">Forgot password?</a></p>"
    );
    document(status, "Partner sign-in", &body)
}

/// A page with a heading and one sentence.
pub fn message(status: StatusCode, title: &str, text: &str) -> Response {
    let body = format!(
        "<h1>{}</h1><p>{}</p><p><a href=\"/.partnergate/login\">Sign in</a></p>",
        escape(title),
        escape(text)
    );
    document(status, title, &body)
}

fn error_box(error: Option<&str>) -> String {
    error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e)))
        .unwrap_or_default()
}

fn notice_box(notice: Option<&str>) -> String {
    notice
        .map(|n| format!("<p class=\"notice\" role=\"status\">{}</p>", escape(n)))
        .unwrap_or_default()
}

/// The second step of a sign-in: the code of an authenticator app or a recovery code.
pub fn second_factor(
    status: StatusCode,
    csrf: &str,
    rd: &str,
    error: Option<&str>,
    passkeys: bool,
) -> Response {
    let passkey = if passkeys {
        "<p>Or use your passkey: <a href=\"/.partnergate/login/passkey\">sign in with a passkey</a>.</p>"
    } else {
        ""
    };
    let body = format!(
        "<h1>Second factor</h1>{}\
<form method=\"post\" action=\"/.partnergate/login/second\">\
<input type=\"hidden\" name=\"csrf\" value=\"{}\">\
<input type=\"hidden\" name=\"rd\" value=\"{}\">\
<label for=\"code\">Code from your authenticator app, or a recovery code</label>\
<input id=\"code\" name=\"code\" type=\"text\" inputmode=\"numeric\" autocomplete=\"one-time-code\" required>\
<button type=\"submit\">Continue</button></form>{passkey}\
<p><a href=\"/.partnergate/login\">Start again</a></p>",
        error_box(error),
        escape(csrf),
        escape(rd),
    );
    document(status, "Second factor", &body)
}

/// One of the user's sessions on the account page.
pub struct SessionLine {
    /// The session's id hash (what the "sign out" form names).
    pub id: String,
    pub started: String,
    pub last_seen: String,
    pub methods: String,
    pub current: bool,
}

/// What the account page shows.
pub struct AccountView<'a> {
    pub email: &'a str,
    pub org: &'a str,
    pub roles: &'a [String],
    pub mfa_required: bool,
    pub factors: Vec<crate::directory::FactorSummary>,
    pub recovery_codes_left: u32,
    pub sessions: Vec<SessionLine>,
    pub csrf: &'a str,
    pub notice: Option<&'a str>,
    pub error: Option<&'a str>,
    pub password_min: usize,
}

fn hidden_csrf(csrf: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        escape(csrf)
    )
}

fn when(ts: Option<i64>) -> String {
    ts.and_then(crate::clock::rfc3339)
        .unwrap_or_else(|| "never".to_string())
}

/// The signed-in user's own page: factors, recovery codes, password, sessions.
pub fn account(status: StatusCode, v: &AccountView<'_>) -> Response {
    let csrf = hidden_csrf(v.csrf);
    let mut factors = String::new();
    for f in &v.factors {
        factors.push_str(&format!(
            "<li data-factor=\"{id}\"><b>{name}</b> ({kind}), added {added}, last used {used} \
<form method=\"post\" action=\"/.partnergate/account/factors/remove\" class=\"inline\">{csrf}\
<input type=\"hidden\" name=\"id\" value=\"{id}\"><button type=\"submit\">Remove</button></form></li>",
            id = escape(&f.id),
            name = escape(&f.name),
            kind = f.kind.as_str(),
            added = when(Some(f.created_at)),
            used = when(f.last_used_at),
        ));
    }
    if factors.is_empty() {
        factors.push_str("<li>No second factor yet.</li>");
    }
    let required = if v.mfa_required {
        "<p>Your organisation requires a second factor.</p>"
    } else {
        ""
    };
    let recovery = if v.factors.is_empty() {
        String::new()
    } else {
        format!(
            "<p>Recovery codes left: <b id=\"codes-left\">{}</b></p>\
<form method=\"post\" action=\"/.partnergate/account/recovery\">{csrf}\
<button type=\"submit\">New recovery codes</button></form>",
            v.recovery_codes_left
        )
    };
    let mut sessions = String::new();
    for s in &v.sessions {
        let this = if s.current { " (this browser)" } else { "" };
        sessions.push_str(&format!(
            "<li>started {}, last seen {}, signed in with {}{this} \
<form method=\"post\" action=\"/.partnergate/account/sessions/end\" class=\"inline\">{csrf}\
<input type=\"hidden\" name=\"id\" value=\"{}\"><button type=\"submit\">Sign out</button></form></li>",
            escape(&s.started),
            escape(&s.last_seen),
            escape(&s.methods),
            escape(&s.id),
        ));
    }
    let body = format!(
        "<h1>Your account</h1>{notice}{error}\
<p>{email} · {org} · {roles}</p>\
<h2>Second factors</h2>{required}<ul id=\"factors\">{factors}</ul>\
<p><a href=\"/.partnergate/account/mfa\">Add an authenticator app</a> · \
<a href=\"/.partnergate/account/passkey\">Add a passkey</a></p>{recovery}\
<h2>Password</h2>\
<form method=\"post\" action=\"/.partnergate/account/password\">{csrf}\
<label for=\"current\">Current password</label>\
<input id=\"current\" name=\"current\" type=\"password\" autocomplete=\"current-password\" required>\
<label for=\"password\">New password (at least {min} characters)</label>\
<input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"new-password\" required>\
<button type=\"submit\">Change password</button></form>\
<h2>Sessions</h2><ul id=\"sessions\">{sessions}</ul>\
<form method=\"post\" action=\"/.partnergate/account/sessions/end-others\">{csrf}\
<button type=\"submit\">Sign out everywhere else</button></form>\
<p><a href=\"/\">Back to the portal</a></p>",
        notice = notice_box(v.notice),
        error = error_box(v.error),
        email = escape(v.email),
        org = escape(v.org),
        roles = escape(&v.roles.join(", ")),
        min = v.password_min,
    );
    document(status, "Your account", &body)
}

/// What the authenticator enrolment page shows.
pub struct EnrolView<'a> {
    pub secret: &'a str,
    pub uri: &'a str,
    pub qr_svg: &'a str,
    pub csrf: &'a str,
    pub rd: &'a str,
    pub name: &'a str,
    pub error: Option<&'a str>,
    /// The org requires a second factor and the user has none yet.
    pub required: bool,
}

/// Add an authenticator app: scan the code (or type the key), confirm with a first code.
pub fn enrol(status: StatusCode, v: &EnrolView<'_>) -> Response {
    let required = if v.required {
        "<p>Your organisation requires a second factor. Set one up to continue.</p>"
    } else {
        ""
    };
    // The SVG goes inline (no image request, nothing for the CSP to allow); its XML
    // declaration does not belong in HTML.
    let qr = v.qr_svg.find("<svg").map_or("", |i| &v.qr_svg[i..]);
    let name = if v.name.is_empty() {
        "Authenticator app"
    } else {
        v.name
    };
    let body = format!(
        "<h1>Add an authenticator app</h1>{required}{error}\
<p>Scan this code with your authenticator app, or enter the key by hand.</p>\
<div class=\"qr\">{qr}</div>\
<p>Key: <code id=\"totp-secret\">{secret}</code></p>\
<p><a id=\"totp-uri\" href=\"{uri}\">Open in an authenticator app on this device</a></p>\
<form method=\"post\" action=\"/.partnergate/account/mfa\">\
<input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<input type=\"hidden\" name=\"rd\" value=\"{rd}\">\
<input type=\"hidden\" name=\"secret\" value=\"{secret}\">\
<label for=\"name\">Name</label>\
<input id=\"name\" name=\"name\" type=\"text\" maxlength=\"64\" required value=\"{name}\">\
<label for=\"code\">The code your app shows</label>\
<input id=\"code\" name=\"code\" type=\"text\" inputmode=\"numeric\" autocomplete=\"one-time-code\" required>\
<button type=\"submit\">Add</button></form>",
        error = error_box(v.error),
        secret = escape(v.secret),
        uri = escape(v.uri),
        csrf = escape(v.csrf),
        rd = escape(v.rd),
        name = escape(name),
    );
    document(status, "Add an authenticator app", &body)
}

/// The recovery codes, shown once.
pub fn recovery_codes(status: StatusCode, codes: &[String], next: &str) -> Response {
    let items: String = codes
        .iter()
        .map(|c| format!("<li><code>{}</code></li>", escape(c)))
        .collect();
    let body = format!(
        "<h1>Your recovery codes</h1>\
<p>Keep these somewhere safe. Each works once, in place of a code from your app, if you \
lose your phone. They are shown only now.</p><ul id=\"recovery-codes\">{items}</ul>\
<p><a id=\"continue\" href=\"{}\">Continue</a></p>",
        escape(next)
    );
    let mut response = document(status, "Your recovery codes", &body);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// "Forgot password?": the email form.
pub fn reset_request(status: StatusCode, csrf: &str, error: Option<&str>) -> Response {
    let body = format!(
        "<h1>Forgot your password?</h1>{}\
<p>Enter the email you sign in with. We will send it a link to choose a new password.</p>\
<form method=\"post\" action=\"/.partnergate/reset\">\
<input type=\"hidden\" name=\"csrf\" value=\"{}\">\
<label for=\"email\">Work email</label>\
<input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"username\" required>\
<button type=\"submit\">Send the link</button></form>\
<p><a href=\"/.partnergate/login\">Back to sign-in</a></p>",
        error_box(error),
        escape(csrf),
    );
    document(status, "Forgot your password?", &body)
}

/// The reset link's page: the new password.
pub fn reset_password(
    status: StatusCode,
    token: &str,
    csrf: &str,
    min: usize,
    error: Option<&str>,
) -> Response {
    let body = format!(
        "<h1>Choose a new password</h1>{}\
<form method=\"post\" action=\"/.partnergate/reset/{}\">\
<input type=\"hidden\" name=\"csrf\" value=\"{}\">\
<label for=\"password\">New password (at least {min} characters)</label>\
<input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"new-password\" required>\
<button type=\"submit\">Set the password</button></form>",
        error_box(error),
        escape(token),
        escape(csrf),
    );
    document(status, "Choose a new password", &body)
}

/// A page of the gateway that runs its one script (`/.partnergate/static/passkey.js`).
fn scripted(status: StatusCode, title: &str, body: &str) -> Response {
    let mut response = document(status, title, body);
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    response
}

/// Add a passkey (the script runs the browser's WebAuthn prompt).
pub fn passkey_register(status: StatusCode, csrf: &str) -> Response {
    let body = format!(
        "<h1>Add a passkey</h1>\
<p>Your device (or security key) creates a key for this portal; signing in then asks for it \
after your password.</p>\
<form id=\"passkey-register\" method=\"post\">\
<input type=\"hidden\" name=\"csrf\" value=\"{}\">\
<label for=\"name\">Name</label>\
<input id=\"name\" name=\"name\" type=\"text\" maxlength=\"64\" required value=\"Passkey\">\
<button type=\"submit\" disabled>Create the passkey</button></form>\
<p id=\"passkey-status\" role=\"status\"></p>\
<div id=\"codes\" hidden><h2>Your recovery codes</h2><p>Each works once, in place of your \
passkey. They are shown only now.</p><ul id=\"recovery-codes\"></ul>\
<p><a id=\"continue\" href=\"/.partnergate/account\">Continue</a></p></div>\
<p><a href=\"/.partnergate/account\">Back to your account</a></p>\
<script src=\"/.partnergate/static/passkey.js\"></script>",
        escape(csrf)
    );
    let mut response = scripted(status, "Add a passkey", &body);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The second step of a sign-in with a passkey.
pub fn passkey_sign_in(status: StatusCode, csrf: &str, rd: &str) -> Response {
    let body = format!(
        "<h1>Sign in with your passkey</h1>\
<form id=\"passkey-signin\" method=\"post\">\
<input type=\"hidden\" name=\"csrf\" value=\"{}\">\
<input type=\"hidden\" name=\"rd\" value=\"{}\">\
<button type=\"submit\" disabled>Use my passkey</button></form>\
<p id=\"passkey-status\" role=\"status\"></p>\
<p><a href=\"/.partnergate/login/second?rd={}\">Use a code instead</a></p>\
<script src=\"/.partnergate/static/passkey.js\"></script>",
        escape(csrf),
        escape(rd),
        escape(rd),
    );
    scripted(status, "Sign in with your passkey", &body)
}
