//! A real OpenID provider on 127.0.0.1 for the SSO tests: the npm package `oidc-provider`
//! (pinned in `tests/oidc/package-lock.json`, installed by `scripts/test` into
//! `tests/oidc/node_modules`) running `tests/oidc/provider.mjs`, with its issuer at
//! `http://127.0.0.1:PORT`, an RSA (RS256) signing key made at start, the code flow with
//! PKCE S256 required, `client_secret_basic` or `client_secret_post`, back-channel logout,
//! and a test hook that spoils the ID tokens of token responses ([`Idp::set_mode`]).
//!
//! [`IdpAgent`] plays the user at the IdP's own pages (sign-in, logout confirmation)
//! without a browser: it keeps the IdP's cookies itself and follows redirects by hand.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::header::{LOCATION, SET_COOKIE};
use reqwest::Url;
use serde_json::{json, Value};

/// A relying party registered at the IdP (the gateway, for one org).
#[derive(Clone, Debug)]
pub struct IdpClient {
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uri: String,
    pub post_logout_redirect_uri: String,
    pub backchannel_logout_uri: String,
}

impl IdpClient {
    /// The client's registration; an empty `post_logout_redirect_uri` or
    /// `backchannel_logout_uri` is left out.
    fn to_json(&self) -> Value {
        let mut client = json!({
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "redirect_uris": [self.redirect_uri],
        });
        if !self.post_logout_redirect_uri.is_empty() {
            client["post_logout_redirect_uris"] = json!([self.post_logout_redirect_uri]);
        }
        if !self.backchannel_logout_uri.is_empty() {
            client["backchannel_logout_uri"] = json!(self.backchannel_logout_uri);
            client["backchannel_logout_session_required"] = json!(true);
        }
        client
    }
}

/// The running provider; stopped (killed) when dropped.
pub struct Idp {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    http: reqwest::Client,
}

fn oidc_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc")
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("reqwest client for the IdP")
}

impl Idp {
    /// Start `node tests/oidc/provider.mjs` with these clients and accounts, e.g.
    /// `json!({"alice": {"email": "alice@acme.example", "email_verified": true,
    /// "groups": ["sales"], "amr": ["pwd"], "acr": "urn:example:pwd"}})` (the key is the
    /// login name and the `sub`; `name` defaults to it). Waits until `/_test/health`
    /// answers (20 s at most).
    pub async fn start(clients: &[IdpClient], accounts: Value) -> Idp {
        let dir = oidc_dir();
        let installed = dir.join("node_modules/oidc-provider/package.json");
        assert!(
            installed.exists(),
            "{} is missing: ./scripts/test installs the test OpenID provider there \
             (npm ci --prefix tests/oidc --no-audit --no-fund)",
            installed.display()
        );
        let port = super::free_port();
        let tmp = tempfile::tempdir().expect("tempdir for the IdP");
        let config = json!({
            "port": port,
            "clients": clients.iter().map(IdpClient::to_json).collect::<Vec<_>>(),
            "accounts": accounts,
        });
        let config_path = tmp.path().join("config.json");
        std::fs::write(&config_path, config.to_string()).expect("write the IdP config");
        let log = std::fs::File::create(tmp.path().join("provider.log")).expect("IdP log file");
        let child = Command::new("node")
            .arg(dir.join("provider.mjs"))
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start node tests/oidc/provider.mjs (is Node.js installed? ./scripts/test installs it)");
        let mut idp = Idp {
            port,
            dir: tmp,
            child: Some(child),
            http: http_client(),
        };
        idp.wait_healthy().await;
        idp
    }

    async fn wait_healthy(&mut self) {
        let url = format!("{}/_test/health", self.issuer());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "the test IdP exited ({status}) before it answered:\n{}",
                        self.log()
                    );
                }
            }
            let answer = self
                .http
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if let Ok(resp) = answer {
                if resp.status().is_success() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the test IdP did not answer {url} within 20 s:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `http://127.0.0.1:PORT`, exactly as in the ID tokens' `iss` (no trailing slash).
    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `{issuer}/.well-known/openid-configuration`.
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer())
    }

    /// What the provider wrote to stderr so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("provider.log")).unwrap_or_default()
    }

    /// How the token endpoint's ID tokens come out from now on: `normal`, `wrong_nonce`,
    /// `wrong_aud`, `expired` (exp an hour ago), `bad_signature` (another RSA key under the
    /// same `kid`) or `wrong_iss`.
    pub async fn set_mode(&self, mode: &str) {
        let resp = self
            .http
            .post(format!("{}/_test/mode", self.issuer()))
            .json(&json!({ "id_token": mode }))
            .send()
            .await
            .expect("POST /_test/mode to the test IdP");
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        assert!(
            status.is_success(),
            "the test IdP refused id_token mode {mode:?}: {status} {body}"
        );
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One cookie the IdP set, as a browser keeps it (by origin and name).
#[derive(Clone, Debug)]
struct Cookie {
    value: String,
    path: String,
}

/// A browser-less user agent for the IdP's own pages: keeps the IdP's cookies (parsed
/// from `Set-Cookie` by hand, per origin and name, sent by path) and follows redirects
/// by hand, stopping at the first `Location` outside the IdP.
pub struct IdpAgent {
    http: reqwest::Client,
    /// (origin, cookie name) → cookie.
    cookies: BTreeMap<(String, String), Cookie>,
}

impl Default for IdpAgent {
    fn default() -> Self {
        IdpAgent::new()
    }
}

const MAX_HOPS: usize = 20;

impl IdpAgent {
    pub fn new() -> IdpAgent {
        IdpAgent {
            http: http_client(),
            cookies: BTreeMap::new(),
        }
    }

    /// Whether the agent holds a cookie of this name from the IdP at `issuer` (e.g.
    /// `op{port}_session`, the IdP session).
    pub fn has_cookie(&self, issuer: &str, name: &str) -> bool {
        let origin = origin_of(&parse(issuer));
        self.cookies.contains_key(&(origin, name.to_string()))
    }

    /// Start at `authorize_url` (where the gateway redirected the browser), follow the
    /// IdP's redirects to its sign-in page, sign in as `login` (any password), and follow
    /// redirects until a `Location` points outside the IdP (the gateway's callback with
    /// `code`, `state` and `iss`); return that URL. With an IdP session already, the IdP
    /// redirects straight back without a sign-in page. Panics on an IdP error page or an
    /// unknown `login`.
    pub async fn authorize(&mut self, authorize_url: &str, login: &str) -> String {
        let start = parse(authorize_url);
        let idp = origin_of(&start);
        let mut url = start;
        let mut signed_in = false;
        for _ in 0..MAX_HOPS {
            let resp = self.send(self.http.get(url.clone()), &url).await;
            let status = resp.status();
            if status.is_redirection() {
                let next = location(&url, &resp);
                if origin_of(&next) != idp {
                    return next.to_string();
                }
                url = next;
                continue;
            }
            let body = resp.text().await.expect("an IdP page");
            assert!(
                status.is_success(),
                "the IdP answered {status} at {url}:\n{body}"
            );
            assert!(
                body.contains("id=\"login-form\""),
                "the IdP showed a page that is not its sign-in form at {url}:\n{body}"
            );
            assert!(
                !signed_in,
                "the IdP did not accept the login {login:?} (it showed its sign-in page again):\n{body}"
            );
            let action = form_action(&body, "login-form")
                .unwrap_or_else(|| panic!("no action on the IdP's login-form at {url}:\n{body}"));
            let action = url
                .join(&action)
                .unwrap_or_else(|e| panic!("bad login-form action {action:?}: {e}"));
            let resp = self
                .send(
                    self.http
                        .post(action.clone())
                        .form(&[("login", login), ("password", "any-password")]),
                    &action,
                )
                .await;
            let status = resp.status();
            if !status.is_redirection() {
                let body = resp.text().await.unwrap_or_default();
                panic!("the IdP did not accept the login {login:?} ({status}):\n{body}");
            }
            signed_in = true;
            let next = location(&action, &resp);
            if origin_of(&next) != idp {
                return next.to_string();
            }
            url = next;
        }
        panic!("more than {MAX_HOPS} redirects at the IdP from {authorize_url}")
    }

    /// End the IdP session: GET `{issuer}/session/end`, submit its confirmation form with
    /// `logout=yes`. Returns when the IdP answered the confirmation; the provider sends the
    /// back-channel logout tokens (and waits for their answers, 2.5 s at most each) before
    /// it answers.
    pub async fn end_session(&mut self, issuer: &str) {
        let url = format!("{}/session/end", issuer.trim_end_matches('/'));
        self.logout(&url).await;
    }

    /// RP-initiated logout: open `end_session_url` (the IdP's `end_session_endpoint`,
    /// perhaps with `id_token_hint`, `post_logout_redirect_uri`, `state`, where the gateway
    /// sent the browser), confirm with `logout=yes`, and return where the IdP redirected
    /// after the confirmation (the `post_logout_redirect_uri` with `state`, or the IdP's
    /// own success page). The back-channel logout tokens are sent before that answer.
    pub async fn logout(&mut self, end_session_url: &str) -> String {
        let mut url = parse(end_session_url);
        let mut page = None;
        for _ in 0..MAX_HOPS {
            let resp = self.send(self.http.get(url.clone()), &url).await;
            let status = resp.status();
            if status.is_redirection() {
                url = location(&url, &resp);
                continue;
            }
            let body = resp.text().await.expect("the IdP's logout page");
            assert!(
                status.is_success(),
                "the IdP answered {status} at {url}:\n{body}"
            );
            page = Some(body);
            break;
        }
        let body =
            page.unwrap_or_else(|| panic!("more than {MAX_HOPS} redirects from {end_session_url}"));
        // Our page has form#logout-form; without an IdP session the provider answers with
        // its own self-submitting form (already carrying logout=yes). Both have the xsrf.
        let action = form_action(&body, "logout-form")
            .or_else(|| first_form_action(&body))
            .unwrap_or_else(|| panic!("no logout form on the IdP's page at {url}:\n{body}"));
        let action = url
            .join(&action)
            .unwrap_or_else(|e| panic!("bad logout form action {action:?}: {e}"));
        let xsrf = super::hidden_value(&body, "xsrf")
            .unwrap_or_else(|| panic!("no xsrf field on the IdP's logout page at {url}:\n{body}"));
        let resp = self
            .send(
                self.http
                    .post(action.clone())
                    .form(&[("xsrf", xsrf.as_str()), ("logout", "yes")]),
                &action,
            )
            .await;
        let status = resp.status();
        if !status.is_redirection() {
            let body = resp.text().await.unwrap_or_default();
            panic!("the IdP did not confirm the logout ({status}) at {action}:\n{body}");
        }
        location(&action, &resp).to_string()
    }

    /// Send with the cookies for `url`, keep the cookies of the answer.
    async fn send(&mut self, req: reqwest::RequestBuilder, url: &Url) -> reqwest::Response {
        let mut req = req.header("accept", "text/html,application/xhtml+xml");
        if let Some(cookie) = self.cookie_header(url) {
            req = req.header("cookie", cookie);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("request to the IdP at {url}: {e}"));
        self.keep(url, &resp);
        resp
    }

    fn cookie_header(&self, url: &Url) -> Option<String> {
        let origin = origin_of(url);
        let pairs: Vec<String> = self
            .cookies
            .iter()
            .filter(|((o, _), c)| *o == origin && path_matches(url.path(), &c.path))
            .map(|((_, name), c)| format!("{name}={}", c.value))
            .collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }

    fn keep(&mut self, url: &Url, resp: &reqwest::Response) {
        let origin = origin_of(url);
        for header in resp.headers().get_all(SET_COOKIE) {
            let Ok(text) = header.to_str() else { continue };
            let mut parts = text.split(';');
            let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else {
                continue;
            };
            let (name, value) = (name.trim().to_string(), value.trim().to_string());
            let mut path = default_path(url.path());
            let mut gone = value.is_empty();
            for attr in parts {
                let (k, v) = attr.split_once('=').unwrap_or((attr, ""));
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
                match k.as_str() {
                    "path" if v.starts_with('/') => path = v.to_string(),
                    "max-age" => gone |= v.parse::<i64>().is_ok_and(|n| n <= 0),
                    // oidc-provider (koa's cookies) clears with `expires=Thu, 01 Jan 1970 …`.
                    "expires" => gone |= v.contains("1970"),
                    _ => {}
                }
            }
            let key = (origin.clone(), name);
            if gone {
                self.cookies.remove(&key);
            } else {
                self.cookies.insert(key, Cookie { value, path });
            }
        }
    }
}

fn parse(url: &str) -> Url {
    Url::parse(url).unwrap_or_else(|e| panic!("not a URL: {url:?}: {e}"))
}

/// `scheme://host:port`, the port always written.
fn origin_of(url: &Url) -> String {
    format!(
        "{}://{}:{}",
        url.scheme(),
        url.host_str().unwrap_or(""),
        url.port_or_known_default().unwrap_or(0)
    )
}

/// The `Location` of a redirect, resolved against the URL that answered.
fn location(base: &Url, resp: &reqwest::Response) -> Url {
    let loc = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("a {} from {base} without a Location", resp.status()));
    base.join(loc)
        .unwrap_or_else(|e| panic!("bad Location {loc:?} from {base}: {e}"))
}

/// RFC 6265 5.1.4: a cookie's path matches the request path.
fn path_matches(request: &str, cookie: &str) -> bool {
    match request.strip_prefix(cookie) {
        Some("") => true,
        Some(rest) => cookie.ends_with('/') || rest.starts_with('/'),
        None => false,
    }
}

/// RFC 6265 5.1.4: the default path of a cookie set without `Path`.
fn default_path(request: &str) -> String {
    match request.rfind('/') {
        Some(0) | None => "/".to_string(),
        Some(i) => request[..i].to_string(),
    }
}

/// The `action` of `<form id="ID" …>`, HTML entities of attribute values undone.
fn form_action(html: &str, id: &str) -> Option<String> {
    let start = html.find(&format!("<form id=\"{id}\""))?;
    attr(&html[start..], "action")
}

fn first_form_action(html: &str) -> Option<String> {
    let start = html.find("<form")?;
    attr(&html[start..], "action")
}

/// The value of `NAME="…"` inside the tag that `tag` starts with.
fn attr(tag: &str, name: &str) -> Option<String> {
    let end = tag.find('>')?;
    let tag = &tag[..end];
    let marker = format!(" {name}=\"");
    let start = tag.find(&marker)? + marker.len();
    let len = tag[start..].find('"')?;
    Some(unescape(&tag[start..start + len]))
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}
