//! State shared by every request: the live configuration snapshot (swapped whole on
//! reload), metrics, the access log, and the in-flight counter used to drain.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::accesslog::AccessLog;
use crate::admission::{Authenticator, Route, Rules};
use crate::config::{Config, Problem};
use crate::directory::Directory;
use crate::jwt::{AssertionSigner, BearerVerifier};
use crate::metrics::Metrics;
use crate::ratelimit::{RateLimits, SharedStore};
use crate::request_id::{RequestId, RequestIds};
use crate::session::Sessions;
use crate::usage::UsageCounter;

use super::streams::Streams;
use super::upstream::UpstreamPool;

/// Everything derived from one configuration. A request loads it once and keeps it to
/// the end, so a reload never changes the rules under a request in flight.
#[derive(Debug)]
pub struct Snapshot {
    pub config: Arc<Config>,
    /// Routes, policies and rate limits: what admission decides with.
    pub rules: Rules,
    pub upstreams: HashMap<String, Arc<UpstreamPool>>,
    /// `route_upstreams[i]` is the pool of the route at position `i`.
    route_upstreams: Vec<Arc<UpstreamPool>>,
    /// Bearer-token verification for `[[issuers]]`.
    pub bearer: Arc<BearerVerifier>,
    /// The `X-Partner-Assertion` signer and its public JWKS, with `[assertion]`.
    pub assertion: Option<Arc<AssertionSigner>>,
    pub jwks: Option<Arc<str>>,
}

impl Snapshot {
    /// Build pools for every upstream and the admission rules. `previous` pools are
    /// reused when their configuration is unchanged, so health state survives a reload,
    /// and so are unchanged rate limits with their state. Route metrics are registered
    /// in `metrics`.
    pub fn build(
        config: Arc<Config>,
        previous: Option<&Snapshot>,
        metrics: &Metrics,
    ) -> Result<Self, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut upstreams = HashMap::new();
        for u in &config.upstreams {
            let reused = previous
                .and_then(|p| p.upstreams.get(&u.name))
                .filter(|old| same_upstream(&old.config, u));
            match reused {
                Some(old) => {
                    upstreams.insert(u.name.clone(), old.clone());
                }
                None => match UpstreamPool::new(u.clone()) {
                    Ok(pool) => {
                        upstreams.insert(u.name.clone(), Arc::new(pool));
                    }
                    Err(reason) => problems.push(Problem {
                        file: config.source.clone(),
                        key: format!("upstreams.{}", u.name),
                        reason,
                    }),
                },
            }
        }
        let mut route_upstreams = Vec::with_capacity(config.routes.len());
        for r in &config.routes {
            match upstreams.get(&r.upstream) {
                Some(pool) => route_upstreams.push(pool.clone()),
                None => problems.push(Problem {
                    file: config.source.clone(),
                    key: format!("routes ({}).upstream", r.name),
                    reason: format!("no usable upstream \"{}\"", r.upstream),
                }),
            }
        }
        let bearer = match BearerVerifier::from_config(&config.issuers) {
            Ok(b) => Some(Arc::new(b)),
            Err(errors) => {
                problems.extend(errors.into_iter().map(|(key, reason)| Problem {
                    file: config.source.clone(),
                    key,
                    reason,
                }));
                None
            }
        };
        let assertion = match &config.assertion {
            Some(a) => match AssertionSigner::load(a) {
                Ok(signer) => Some(Arc::new(signer)),
                Err(reason) => {
                    problems.push(Problem {
                        file: config.source.clone(),
                        key: "assertion.key_file".into(),
                        reason,
                    });
                    None
                }
            },
            None => None,
        };
        let Some(bearer) = bearer.filter(|_| problems.is_empty()) else {
            return Err(problems);
        };
        // A reload keeps the process's Redis connection; a new or changed [redis] needs a
        // restart (reload says so).
        let old_limits = previous.map(|p| &p.rules.limits);
        let shared_store = old_limits
            .and_then(|l| l.shared().cloned())
            .filter(|_| config.redis.is_some());
        let limits = RateLimits::build(&config, old_limits, shared_store);
        Ok(Snapshot {
            rules: Rules::new(config.clone(), limits, metrics),
            jwks: assertion.as_ref().map(|s| Arc::from(s.jwks_json())),
            assertion,
            bearer,
            config,
            upstreams,
            route_upstreams,
        })
    }

    /// The same configuration with its route metrics in `metrics` and, with `store`, its
    /// rate limits shared through Redis (at start, once the process's registry and the
    /// Redis connection exist).
    pub fn rebind(mut self, metrics: &Metrics, store: Option<Arc<SharedStore>>) -> Self {
        let limits = RateLimits::build(&self.config, Some(&self.rules.limits), store);
        self.rules = Rules::new(self.config.clone(), limits, metrics);
        self
    }

    /// The upstream pool of `route`.
    pub fn pool(&self, route: &Route) -> Option<&Arc<UpstreamPool>> {
        self.route_upstreams.get(route.position)
    }

    /// Authentication of requests under this configuration.
    pub fn authenticator<'a>(&'a self, sessions: &'a Sessions) -> Authenticator<'a> {
        Authenticator {
            sessions,
            bearer: &self.bearer,
            session: &self.config.session,
        }
    }
}

fn same_upstream(a: &crate::config::UpstreamConfig, b: &crate::config::UpstreamConfig) -> bool {
    a.addrs == b.addrs
        && a.tls == b.tls
        && a.sni == b.sni
        && a.ca_file == b.ca_file
        && a.connect_timeout == b.connect_timeout
        && a.read_timeout == b.read_timeout
        && a.health_check.as_ref().map(|h| (&h.path, h.interval))
            == b.health_check.as_ref().map(|h| (&h.path, h.interval))
}

/// The long-lived parts behind authentication and the reserved paths.
pub struct Services {
    pub directory: Arc<Directory>,
    pub sessions: Arc<Sessions>,
    /// Upstream connections and the long-lived requests on them (closed on revocation).
    pub streams: Arc<Streams>,
    /// The gateway's own pages (`/.partnergate/…`).
    pub portal: axum::Router,
    /// The background runtime: directory I/O and the portal run there.
    pub background: tokio::runtime::Handle,
    /// Request counts for the usage data, flushed to the directory periodically.
    pub usage: Arc<UsageCounter>,
    /// With `[tracing]`: the request spans' sampler and exporter queue.
    pub tracer: Option<Arc<crate::telemetry::Tracer>>,
}

/// Process-wide state of the gateway.
pub struct Shared {
    live: ArcSwap<Snapshot>,
    pub metrics: Arc<Metrics>,
    pub access_log: AccessLog,
    pub services: Services,
    inflight: AtomicUsize,
    draining: AtomicBool,
    ids: RequestIds,
}

impl Shared {
    pub fn new(
        snapshot: Snapshot,
        metrics: Arc<Metrics>,
        access_log: AccessLog,
        services: Services,
    ) -> Self {
        Shared {
            live: ArcSwap::from_pointee(snapshot),
            metrics,
            access_log,
            services,
            inflight: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
            ids: RequestIds::default(),
        }
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.live.load_full()
    }

    pub fn swap(&self, snapshot: Snapshot) {
        self.live.store(Arc::new(snapshot));
    }

    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::Acquire)
    }

    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    pub fn next_request_id(&self) -> RequestId {
        self.ids.next()
    }
}

/// Counts a request in flight for as long as it lives (held by the request context).
pub struct InflightGuard(Arc<Shared>);

impl InflightGuard {
    pub fn new(shared: Arc<Shared>) -> Self {
        shared.inflight.fetch_add(1, Ordering::AcqRel);
        InflightGuard(shared)
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::AcqRel);
    }
}
