//! The per-request context: what earlier phases found, for later phases and the log.

use std::net::IpAddr;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Instant;

use crate::directory::CachedIdentity;
use crate::session::LiveSession;

use super::state::{InflightGuard, Snapshot};
use super::streams::{Conn, Tracked};
use super::upstream::UpstreamPool;

/// The outcome label of CONTRACT §4 `decision`.
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
}

/// The forwarding headers the gateway sets, computed once from the peer and the
/// trusted-proxy rule.
#[derive(Debug, Default, Clone)]
pub struct Forwarded {
    pub for_chain: String,
    pub proto: String,
    pub host: String,
}

pub struct RequestCtx {
    pub started: Instant,
    pub snapshot: Option<Arc<Snapshot>>,
    pub request_id: String,
    pub peer_trusted: bool,
    pub client_ip: Option<IpAddr>,
    pub tls: bool,
    pub host: String,
    pub path: String,
    pub query: Option<String>,
    pub route: Option<usize>,
    pub account: Option<String>,
    pub upstream: Option<Arc<UpstreamPool>>,
    pub decision: Decision,
    pub reason: Option<&'static str>,
    /// Set when the gateway answered the request itself.
    pub local_status: Option<u16>,
    pub upstream_started: Option<Instant>,
    pub upstream_ms: Option<f64>,
    pub connect_attempts: usize,
    pub forwarded: Forwarded,
    /// The authenticated identity (routes with `auth` other than none).
    pub identity: Option<Arc<CachedIdentity>>,
    /// Authenticated by a bearer token (its Authorization header is not forwarded).
    pub bearer: bool,
    /// The session that authenticated the request (session cookie).
    pub session: Option<Arc<LiveSession>>,
    /// The upstream connection of this attempt if pingora opened a new one for it.
    pub upstream_conn: Option<Arc<Conn>>,
    /// The upstream socket of the current attempt.
    pub upstream_fd: Option<RawFd>,
    /// Registered while a long-lived request (WebSocket, HTTP/2, event stream) runs, so a
    /// revocation can close it.
    pub stream: Option<Tracked>,
    /// For the access log: the user's email and org id, once known.
    pub user: Option<String>,
    pub org: Option<String>,
    _inflight: InflightGuard,
}

impl RequestCtx {
    pub fn new(request_id: String, inflight: InflightGuard) -> Self {
        RequestCtx {
            started: Instant::now(),
            snapshot: None,
            request_id,
            peer_trusted: false,
            client_ip: None,
            tls: false,
            host: String::new(),
            path: String::new(),
            query: None,
            route: None,
            account: None,
            upstream: None,
            decision: Decision::Error,
            reason: None,
            local_status: None,
            upstream_started: None,
            upstream_ms: None,
            connect_attempts: 0,
            forwarded: Forwarded::default(),
            identity: None,
            bearer: false,
            session: None,
            upstream_conn: None,
            upstream_fd: None,
            stream: None,
            user: None,
            org: None,
            _inflight: inflight,
        }
    }

    pub fn route_name(&self) -> Option<&str> {
        let snapshot = self.snapshot.as_ref()?;
        snapshot.routes.get(self.route?).map(|r| r.name.as_str())
    }

    pub fn deny(&mut self, reason: &'static str) {
        self.decision = Decision::Deny;
        self.reason = Some(reason);
    }
}
