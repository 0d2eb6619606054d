//! What `partnergate explain` reports: the [`Explanation`] and its parts, serialised as
//! is for `--json`.

use serde::Serialize;

use crate::directory::Identity;

/// Who the request is from, as the directory answered.
#[derive(Debug, Clone)]
pub enum Who {
    /// No `--user`: a request without credentials.
    Anonymous,
    /// `--user` names nobody in the directory.
    Unknown(String),
    Known(Box<Identity>),
}

impl Who {
    pub(super) fn identity(&self) -> Option<&Identity> {
        match self {
            Who::Known(identity) => Some(identity),
            _ => None,
        }
    }
}

/// Everything `explain` reports; serialised as is for `--json` (field names are part of
/// the command's interface: add fields, never rename them).
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub request: RequestView,
    /// A reserved `/.partnergate/…` path: the gateway serves it itself, no route applies.
    pub reserved: bool,
    /// The routes the lookup looked at, in file order, up to and including the match
    /// (all of them when none matches).
    pub routes: Vec<RouteLine>,
    /// The route the request is attributed to: the match, or the route whose `methods`
    /// refused it; `null` when no route matched.
    pub route: Option<RouteView>,
    /// The user from the directory; `null` for an anonymous request or an unknown user.
    pub identity: Option<IdentityView>,
    /// Whether the gateway resolves and checks an identity for this request (false on
    /// `auth = "none"` routes, reserved paths and when no route matched).
    pub identity_used: bool,
    /// Every rule of the route in the order the gateway checks them, all evaluated.
    pub rules: Vec<RuleLine>,
    /// `allow`, `deny`, `shadow_deny` or `unauthenticated` (the access log's decision).
    pub decision: &'static str,
    /// The deny reason (also for `shadow_deny`), as in the access log and metrics.
    pub reason: Option<&'static str>,
    /// What decided: a rule name (`allow_roles`, `methods`, `auth`, …) or `routes` (no
    /// route matched); `null` when allowed.
    pub decided_by: Option<&'static str>,
    /// The gateway's answer: 200 = forwarded to the upstream (whose status the client
    /// gets), 401, 403 or 404; `null` on reserved paths (the gateway's own page decides).
    pub status: Option<u16>,
    /// For `unauthenticated` GET requests: a browser navigation (Accept: text/html) gets
    /// 302 to the login page instead of 401.
    pub browser_status: Option<u16>,
    /// The upstream the request is forwarded to (allow and shadow_deny).
    pub upstream: Option<String>,
    /// The rate limits the request is counted against.
    pub rate_limits: Vec<RateLimitView>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RequestView {
    pub method: String,
    pub url: String,
    pub host: String,
    pub path: String,
    pub query: Option<String>,
    /// `--user` as given (lower-cased); `null` for an anonymous request.
    pub user: Option<String>,
    /// The time grant expiry is judged at (RFC 3339, UTC).
    pub now: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RouteLine {
    pub index: usize,
    pub name: String,
    pub matched: bool,
    pub host_matches: bool,
    pub path_matches: bool,
    pub method_allowed: bool,
    pub why: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RouteView {
    pub index: usize,
    pub name: String,
    /// False when host and path matched but `methods` refused the method.
    pub matched: bool,
    pub host: Option<String>,
    pub path: String,
    /// `null`: every method.
    pub methods: Option<Vec<String>>,
    pub upstream: String,
    pub auth: &'static str,
    pub mode: &'static str,
    /// What `{account}` captured.
    pub account: Option<String>,
    pub websocket: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct IdentityView {
    pub user_id: String,
    pub email: String,
    pub status: &'static str,
    pub org: OrgView,
    /// The org's type is `server.owner_org_type`. Owner admins get no bypass.
    pub owner_admin: bool,
    pub roles: Vec<String>,
    pub permissions: Vec<String>,
    pub grants: Vec<GrantView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OrgView {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub org_type: String,
    pub status: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct GrantView {
    pub account: String,
    pub level: &'static str,
    pub expires_at: Option<String>,
    pub expired: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RuleLine {
    /// The configuration key (or directory fact) the rule checks.
    pub rule: &'static str,
    /// `pass`, `fail` or `n/a`.
    pub outcome: &'static str,
    /// For `fail`: the deny reason, or `unauthenticated`.
    pub reason: Option<&'static str>,
    /// The rule that decided the request.
    pub decisive: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RateLimitView {
    /// `global` (server.rate_limit_per_ip), `login` (login.rate_limit_per_ip) or `route`.
    pub scope: &'static str,
    /// What the buckets are keyed by: `ip`, `user`, `org` or `route` (one bucket).
    pub key: &'static str,
    /// The bucket this request counts against, in words.
    pub bucket: String,
    pub per_second: f64,
    pub burst: u32,
    /// Counted in Redis, shared by every instance (`[redis]` is configured).
    pub shared: bool,
    /// When Redis cannot answer: `local` (this instance's buckets) or `deny` (503).
    pub on_redis_error: &'static str,
}
