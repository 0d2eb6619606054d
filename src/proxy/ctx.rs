//! The per-request context: what `request_filter` decided, typed, for the later phases
//! and the log line.

use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Instant;

use crate::admission::{Admitted, CleanRequest, Decision, Reason, Refused};
use crate::portal::PortalOutcome;
use crate::request_id::RequestId;

use super::state::{InflightGuard, Snapshot};
use super::streams::{Conn, Tracked};
use super::upstream::UpstreamPool;

/// What became of the request.
pub enum Outcome {
    /// `request_filter` has not decided (pingora failed before it, or it is running).
    Pending,
    /// Let through to the upstream.
    Forward(Forward),
    /// A `/.partnergate/…` path, answered by the gateway's own pages.
    Reserved {
        request: CleanRequest,
        /// What the page decided, once it answered.
        portal: Option<PortalOutcome>,
    },
    /// Refused by the gateway.
    Refused(Refused),
    /// A forward-auth check: what the gateway answered about the original request.
    Authz(super::authz::Authz),
}

/// An admitted request and the upstream pool of its route.
pub struct Forward {
    pub admitted: Admitted,
    pub pool: Arc<UpstreamPool>,
}

/// The upstream side of a forwarded request.
#[derive(Default)]
pub struct Attempt {
    /// When the first connection attempt started.
    pub started: Option<Instant>,
    /// Time until the upstream's response head, in milliseconds.
    pub ms: Option<f64>,
    pub connects: usize,
    /// The upstream connection of this attempt if pingora opened a new one for it.
    pub conn: Option<Arc<Conn>>,
    /// The upstream socket of the current attempt.
    pub fd: Option<RawFd>,
    /// Registered while a long-lived request (WebSocket, HTTP/2, event stream) runs, so a
    /// revocation can close it.
    pub stream: Option<Tracked>,
}

pub struct RequestCtx {
    pub started: Instant,
    pub request_id: RequestId,
    /// The configuration the request runs under, loaded once by `request_filter`.
    pub snapshot: Option<Arc<Snapshot>>,
    pub outcome: Outcome,
    /// The status of an answer the gateway wrote itself.
    pub local_status: Option<u16>,
    /// A failure after admission (upstream down, timeout, client gone) overrides the
    /// decision and reason of the log line.
    pub failure: Option<(Decision, Reason)>,
    pub upstream: Attempt,
    /// With `[tracing]`: this request's trace context.
    pub trace: Option<crate::telemetry::TraceIds>,
    /// A sampled request: when its admission stages ended.
    pub stages: Option<crate::admission::Stages>,
    _inflight: InflightGuard,
}

impl RequestCtx {
    pub fn new(request_id: RequestId, inflight: InflightGuard) -> Self {
        RequestCtx {
            started: Instant::now(),
            request_id,
            snapshot: None,
            outcome: Outcome::Pending,
            local_status: None,
            failure: None,
            upstream: Attempt::default(),
            trace: None,
            stages: None,
            _inflight: inflight,
        }
    }

    /// The forwarded request, when `request_filter` let it through.
    pub fn forward(&self) -> Option<&Forward> {
        match &self.outcome {
            Outcome::Forward(f) => Some(f),
            _ => None,
        }
    }
}
