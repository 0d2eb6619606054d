//! Why the gateway answered a request itself, and how: one [`Rejection`] per refusal, with
//! its status, its reason from a closed set (written to the access log and the metrics by
//! name), and the headers the answer needs (`Retry-After`, `WWW-Authenticate`,
//! `Location`). The proxy turns it into a response in exactly one place.

use crate::config::RateKey;
use crate::normalize::strict::Strictness;
use crate::normalize::Malformed;
use crate::policy::DenyReason;

/// The outcome label of a request: the `decision` of the access log and of
/// `partnergate_http_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
    ShadowDeny,
    Unauthenticated,
    RateLimited,
    Error,
}

impl Decision {
    pub const ALL: [Decision; 6] = [
        Decision::Allow,
        Decision::Deny,
        Decision::ShadowDeny,
        Decision::Unauthenticated,
        Decision::RateLimited,
        Decision::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
            Decision::ShadowDeny => "shadow_deny",
            Decision::Unauthenticated => "unauthenticated",
            Decision::RateLimited => "ratelimited",
            Decision::Error => "error",
        }
    }

    /// Position in [`Decision::ALL`], for tables indexed by decision.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitScope {
    /// `server.rate_limit_per_ip`, before routing.
    Global,
    /// `login.rate_limit_per_ip`, on the public forms.
    Login,
    /// The route's own `rate_limit`, keyed as configured.
    Route(RateKey),
}

impl LimitScope {
    /// The `key` label of `partnergate_ratelimit_rejections_total`.
    pub fn key_label(self) -> &'static str {
        match self {
            LimitScope::Global => "global",
            LimitScope::Login => "login",
            LimitScope::Route(key) => key.as_str(),
        }
    }

    fn reason(self) -> &'static str {
        match self {
            LimitScope::Global => "rate_limit_global",
            LimitScope::Login => "rate_limit_login",
            LimitScope::Route(_) => "rate_limit",
        }
    }
}

/// How a session cookie failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionFailure {
    /// No such session (never existed, logged out, swept).
    Unknown,
    Idle,
    Expired,
}

impl SessionFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionFailure::Unknown => "unknown_session",
            SessionFailure::Idle => "session_idle",
            SessionFailure::Expired => "session_expired",
        }
    }
}

/// Why a bearer token was refused: the short name of a [`crate::jwt::BearerError`]
/// (only that type makes one, so the set stays closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenProblem(&'static str);

impl From<&crate::jwt::BearerError> for TokenProblem {
    fn from(e: &crate::jwt::BearerError) -> Self {
        TokenProblem(e.reason())
    }
}

/// The closed set of reasons the gateway refuses (or fails) a request for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The request target or host cannot be used as sent.
    Malformed(Malformed),
    /// The head as it arrived breaks the HTTP/1.1 message syntax (RFC 9112).
    Strict(Strictness),
    /// An HTTP/2 stream the client (or h2) reset before it was forwarded.
    StreamReset,
    /// Something about the request head pingora could not parse.
    Unparsable,
    HeaderTooLarge,
    /// On TLS: the Host differs from the SNI of the connection.
    Misdirected,
    BodyTooLarge,
    /// The route policy (or route lookup) refused it.
    Policy(DenyReason),
    WebSocketNotAllowed,
    NoCredentials,
    UnknownUser,
    Session(SessionFailure),
    Token(TokenProblem),
    RateLimited(LimitScope),
    /// Redis could not answer a limit whose `on_redis_error` is `deny`.
    RateLimitUnavailable,
    DirectoryUnavailable,
    NoHealthyUpstream,
    UpstreamUnavailable,
    UpstreamTimeout,
    ClientClosed,
    /// A forward-auth check from a peer that is not a trusted proxy.
    UntrustedPeer,
    Internal,
}

impl Reason {
    /// The name written to the access log (`reason`) and used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Malformed(m) => m.reason(),
            Reason::Strict(s) => s.reason(),
            Reason::UntrustedPeer => "untrusted_peer",
            Reason::StreamReset => "stream_reset",
            Reason::Unparsable => "malformed",
            Reason::HeaderTooLarge => "header_too_large",
            Reason::Misdirected => "misdirected",
            Reason::BodyTooLarge => "body_too_large",
            Reason::Policy(r) => r.as_str(),
            Reason::WebSocketNotAllowed => "websocket_not_allowed",
            Reason::NoCredentials => "no_credentials",
            Reason::UnknownUser => "unknown_user",
            Reason::Session(s) => s.as_str(),
            Reason::Token(TokenProblem(name)) => name,
            Reason::RateLimited(scope) => scope.reason(),
            Reason::RateLimitUnavailable => "rate_limit_unavailable",
            Reason::DirectoryUnavailable => "directory_unavailable",
            Reason::NoHealthyUpstream => "no_healthy_upstream",
            Reason::UpstreamUnavailable => "upstream_unavailable",
            Reason::UpstreamTimeout => "upstream_timeout",
            Reason::ClientClosed => "client_closed",
            Reason::Internal => "internal",
        }
    }
}

/// The challenge of a 401 for a request without (usable) credentials.
pub const CHALLENGE: &str = "Bearer realm=\"partnergate\"";
/// The challenge of a 401 for credentials that are valid but not strong or fresh enough
/// (RFC 9470, step-up authentication).
pub const CHALLENGE_STEP_UP: &str =
    "Bearer realm=\"partnergate\", error=\"insufficient_user_authentication\"";
/// The challenge of a 401 for a bearer token that was refused.
pub const CHALLENGE_INVALID_TOKEN: &str = "Bearer realm=\"partnergate\", error=\"invalid_token\"";

/// A refused request: what the client is told and what the log says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub reason: Reason,
    pub decision: Decision,
    /// `Retry-After` seconds (429, and 503 from a limit).
    pub retry_after: Option<u64>,
    /// `WWW-Authenticate` (401).
    pub challenge: Option<&'static str>,
    /// `Location` (302 to the login page).
    pub location: Option<String>,
}

impl Rejection {
    fn new(status: u16, reason: Reason, decision: Decision) -> Self {
        Rejection {
            status,
            reason,
            decision,
            retry_after: None,
            challenge: None,
            location: None,
        }
    }

    /// 400 (or 431 for an oversized head): the request cannot be used as sent.
    pub fn malformed(reason: Reason) -> Self {
        let status = match reason {
            Reason::HeaderTooLarge => 431,
            Reason::Misdirected => 421,
            Reason::BodyTooLarge => 413,
            _ => 400,
        };
        Rejection::new(status, reason, Decision::Deny)
    }

    /// A policy refusal: 404 when no route matches, 403 otherwise.
    pub fn denied(reason: DenyReason) -> Self {
        let status = if reason == DenyReason::NoRoute {
            404
        } else {
            403
        };
        Rejection::new(status, Reason::Policy(reason), Decision::Deny)
    }

    /// 403 for a WebSocket upgrade on a route without `websocket = true`.
    pub fn websocket_not_allowed() -> Self {
        Rejection::new(403, Reason::WebSocketNotAllowed, Decision::Deny)
    }

    /// No usable credentials. A browser navigation (`browser`) is sent to the login page
    /// with the original path and query; anything else gets 401 with a challenge. A
    /// refused bearer token is always a 401 (`invalid_token`): the client chose to send
    /// a token, a login page would not help it.
    pub fn unauthenticated(
        reason: Reason,
        bad_token: bool,
        browser: bool,
        path: &str,
        query: Option<&str>,
    ) -> Self {
        let mut r = Rejection::new(401, reason, Decision::Unauthenticated);
        if bad_token {
            r.challenge = Some(CHALLENGE_INVALID_TOKEN);
        } else if browser {
            r.status = 302;
            r.location = Some(login_location(path, query));
        } else {
            r.challenge = Some(CHALLENGE);
        }
        r
    }

    /// The credentials are fine but not strong (`mfa_required`) or fresh
    /// (`reauth_required`) enough. A browser navigation is sent to sign in again with a
    /// second factor and come back (or, with `enrol`, to enrol a first factor); anything
    /// else gets 401 with the RFC 9470 `insufficient_user_authentication` challenge.
    pub fn step_up(
        reason: DenyReason,
        enrol: bool,
        browser: bool,
        path: &str,
        query: Option<&str>,
    ) -> Self {
        let mut r = Rejection::new(401, Reason::Policy(reason), Decision::Unauthenticated);
        if browser {
            r.status = 302;
            let back = login_location(path, query);
            let rd = back.trim_start_matches("/.partnergate/login?rd=");
            r.location = Some(if enrol {
                format!("/.partnergate/account/mfa?rd={rd}")
            } else {
                let why = if reason == DenyReason::ReauthRequired {
                    "reauth"
                } else {
                    "mfa"
                };
                format!("{back}&step_up={why}")
            });
        } else {
            r.challenge = Some(CHALLENGE_STEP_UP);
        }
        r
    }

    /// 429 with `Retry-After` from a rate limit.
    pub fn rate_limited(scope: LimitScope, retry_after: u64) -> Self {
        let mut r = Rejection::new(429, Reason::RateLimited(scope), Decision::RateLimited);
        r.retry_after = Some(retry_after.max(1));
        r
    }

    /// 503 (fail closed) because a dependency cannot answer: the directory, or Redis for
    /// a limit that must not fall back.
    pub fn unavailable(reason: Reason) -> Self {
        let mut r = Rejection::new(503, reason, Decision::Error);
        if reason == Reason::RateLimitUnavailable {
            r.retry_after = Some(1);
        }
        r
    }

    /// The extra headers of the answer, after the security headers every gateway answer
    /// carries.
    pub fn headers(&self) -> impl Iterator<Item = (&'static str, std::borrow::Cow<'_, str>)> {
        let retry = self
            .retry_after
            .map(|s| ("retry-after", std::borrow::Cow::Owned(s.to_string())));
        let challenge = self
            .challenge
            .map(|c| ("www-authenticate", std::borrow::Cow::Borrowed(c)));
        let location = self
            .location
            .as_deref()
            .map(|l| ("location", std::borrow::Cow::Borrowed(l)));
        retry.into_iter().chain(challenge).chain(location)
    }

    /// Whether the answer has a JSON error body (a redirect has none).
    pub fn has_body(&self) -> bool {
        self.location.is_none()
    }
}

/// `/.partnergate/login?rd=<path and query, percent-encoded>`.
pub fn login_location(path: &str, query: Option<&str>) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(24 + path.len() + query.map_or(0, |q| q.len() + 3));
    out.push_str("/.partnergate/login?rd=");
    let rest = query.map(|q| ("?", q));
    let bytes = path.bytes().chain(
        rest.into_iter()
            .flat_map(|(mark, q)| mark.bytes().chain(q.bytes())),
    );
    for b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}
