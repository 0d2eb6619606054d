//! `--method` and `--url` of `partnergate explain`: checked and normalised as the proxy
//! would, and turned into the request head admission runs on.

use http::Method;

use crate::config::PublicUrl;
use crate::normalize;

/// The request `explain` looks at: what the proxy would see after cleaning, and the
/// request head it is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub method: Method,
    /// `--url` as given.
    pub url: String,
    /// Lower-case, without port.
    pub host: String,
    /// Normalised.
    pub path: String,
    pub query: Option<String>,
    /// The request target as sent (origin form), before normalising.
    origin: http::Uri,
    /// The Host header as sent.
    authority: http::HeaderValue,
}

impl Target {
    /// The request head a client would send for this target: Host, and `Accept:
    /// text/html` when it is a browser navigating.
    pub fn head(&self, browser: bool) -> http::request::Parts {
        let (mut head, ()) = http::Request::new(()).into_parts();
        head.method = self.method.clone();
        head.uri = self.origin.clone();
        head.headers
            .insert(http::header::HOST, self.authority.clone());
        if browser {
            head.headers.insert(
                http::header::ACCEPT,
                http::HeaderValue::from_static("text/html"),
            );
        }
        head
    }
}

/// `--method`: any HTTP method token, case-insensitive (`get` = `GET`).
pub fn parse_method(raw: &str) -> Result<Method, String> {
    let upper = raw.trim().to_ascii_uppercase();
    if upper.is_empty() {
        return Err("must not be empty".into());
    }
    Method::from_bytes(upper.as_bytes()).map_err(|_| format!("{raw:?} is not an HTTP method"))
}

/// `--url`: an absolute `http(s)://host[:port]/path?query` URL, or a path (`/path?query`)
/// on `server.public_url`'s host. The host loses its port and the path is normalised as
/// the proxy does; a target the proxy would answer with 400 is an error here.
pub fn parse_target(method: Method, url: &str, public_url: &PublicUrl) -> Result<Target, String> {
    let trimmed = url.trim();
    let without_fragment = trimmed.split('#').next().unwrap_or_default();
    let (authority, path_and_query) = if without_fragment.starts_with('/') {
        // Checked like an origin-form request target.
        let uri: http::Uri = without_fragment
            .parse()
            .map_err(|e| format!("not a valid request path ({e}); the gateway would answer 400"))?;
        let pq = uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_string();
        (public_url.authority.clone(), pq)
    } else if without_fragment.starts_with("http://") || without_fragment.starts_with("https://") {
        let uri: http::Uri = without_fragment
            .parse()
            .map_err(|e| format!("not a valid URL ({e})"))?;
        let authority = uri.authority().ok_or("the URL has no host")?.as_str();
        if authority.contains('@') {
            return Err("user information (user@host) in the URL is not supported".into());
        }
        let pq = uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_string();
        (authority.to_string(), pq)
    } else {
        return Err(
            "must be an absolute http:// or https:// URL, or a path starting with '/'".into(),
        );
    };
    let host = normalize::normalize_host(&authority)
        .map_err(|m| format!("host {authority:?}: {m}; the gateway would answer 400"))?
        .into_owned();
    let (path, query) = normalize::normalize_target(&path_and_query)
        .map_err(|m| format!("{m}; the gateway would answer 400 (reason {})", m.reason()))?;
    let origin = http::Uri::try_from(path_and_query.as_str())
        .map_err(|e| format!("not a valid request path ({e}); the gateway would answer 400"))?;
    let authority = http::HeaderValue::from_str(&authority)
        .map_err(|_| format!("host {authority:?} is not a valid Host header"))?;
    Ok(Target {
        method,
        url: trimmed.to_string(),
        host,
        path: path.into_owned(),
        query: query.map(str::to_string),
        origin,
        authority,
    })
}
