//! Rate limits: the global per-IP limit, the login limit and the
//! per-route limits of one configuration snapshot.
//!
//! Every limit is a [`Limiter`]: GCRA buckets held in this process (governor), keyed by
//! client IP (IPv6 by its /64), by a name (user, org) or one bucket for the whole route.
//! With `[redis]` configured the same GCRA runs on Redis through a [`SharedStore`], so
//! several gateway instances share one budget; when Redis cannot answer, the limit's
//! `on_redis_error` decides between this instance's own buckets (`local`) and refusing
//! the request (`deny`). [`RateLimits`] ties the limits of one configuration together and
//! keeps their state across reloads.

mod local;
mod shared;

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, RateKey, RateSpec, RedisFallback};

pub use local::{Limiter, MAX_KEYS};
pub use shared::SharedStore;

#[cfg(test)]
mod tests;

/// The answer of one limit for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Over the limit: 429, try again after `retry_after`.
    Limited {
        retry_after: Duration,
    },
    /// Redis could not answer and this limit's `on_redis_error` is `deny` (fail closed: 503).
    Unavailable,
}

impl Verdict {
    /// The `Retry-After` value: seconds rounded up, at least 1 (a client told "0" retries
    /// at once); `None` when allowed.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Verdict::Allow => None,
            Verdict::Limited { retry_after } => {
                let up = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                Some(up.max(1))
            }
            Verdict::Unavailable => Some(1),
        }
    }

    pub fn is_allowed(&self) -> bool {
        matches!(self, Verdict::Allow)
    }
}

/// What a request is counted against within one limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKey<'a> {
    /// A client address. IPv6 addresses share the bucket of their /64 (one subscriber
    /// usually holds a whole /64, so per-address buckets would not limit anything);
    /// IPv4-mapped IPv6 addresses count as the IPv4 address.
    Ip(IpAddr),
    /// A user (email) or an org id.
    Name(&'a str),
    /// One bucket for the whole route (`key = "route"`).
    Whole,
}

/// The address a bucket is kept under: IPv4 as is, IPv6 cut to its /64.
pub(crate) fn bucket_ip(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !(u64::MAX as u128))),
    }
}

/// The key text in Redis keys: `ip:203.0.113.7`, `ip:2001:db8:1:2::/64`, `id:alice@acme.example`,
/// `all`. The kind prefix keeps a name that looks like an address apart from the address.
impl fmt::Display for LimitKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LimitKey::Ip(ip) => match bucket_ip(ip) {
                IpAddr::V4(v4) => write!(f, "ip:{v4}"),
                IpAddr::V6(v6) => write!(f, "ip:{v6}/64"),
            },
            LimitKey::Name(name) => write!(f, "id:{name}"),
            LimitKey::Whole => f.write_str("all"),
        }
    }
}

/// The outcome of the limits applied to a request, for the proxy's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Allowed,
    /// Holds [`Verdict::Limited`] (429) or [`Verdict::Unavailable`] (503).
    Limited(Verdict),
}

impl From<Verdict> for Applied {
    fn from(verdict: Verdict) -> Self {
        match verdict {
            Verdict::Allow => Applied::Allowed,
            other => Applied::Limited(other),
        }
    }
}

/// The limits of one configuration snapshot, and the Redis store they share (if any).
pub struct RateLimits {
    global: Option<Arc<Limiter>>,
    login: Arc<Limiter>,
    /// By position in `config.routes`; `None` for a route without `rate_limit`.
    routes: Vec<Option<(RateKey, Arc<Limiter>)>>,
    shared: Option<Arc<SharedStore>>,
}

/// Redis label of the global per-IP limit.
const GLOBAL: &str = "global";
/// Redis label of the login limit.
const LOGIN: &str = "login";

/// Redis label of a route's limit. Route names cannot contain ':' (validated), so
/// `route:<name>` never meets `global`/`login` even for a route named "login".
fn route_label(name: &str) -> String {
    format!("route:{name}")
}

impl RateLimits {
    /// The limits of `config`. With `previous` (a reload), the limiters whose spec (and key,
    /// for routes) did not change are taken over with their state, so a reload does not
    /// hand every client a fresh burst; changed or new ones start empty.
    pub fn build(
        config: &Config,
        previous: Option<&RateLimits>,
        shared: Option<Arc<SharedStore>>,
    ) -> Self {
        let reuse = |old: Option<&Arc<Limiter>>, label: &str, spec: RateSpec| match old {
            Some(old) if old.spec() == spec => Arc::clone(old),
            _ => Arc::new(Limiter::new(label, spec)),
        };
        let global = config
            .server
            .rate_limit_per_ip
            .map(|spec| reuse(previous.and_then(|p| p.global.as_ref()), GLOBAL, spec));
        let login = reuse(
            previous.map(|p| &p.login),
            LOGIN,
            config.login.rate_limit_per_ip,
        );
        let routes = config
            .routes
            .iter()
            .map(|route| {
                let limit = route.rate_limit?;
                let label = route_label(&route.name);
                let old = previous.and_then(|p| {
                    p.routes
                        .iter()
                        .flatten()
                        .find(|(key, limiter)| *key == limit.key && limiter.label() == label)
                });
                Some((
                    limit.key,
                    reuse(old.map(|(_, limiter)| limiter), &label, limit.rate),
                ))
            })
            .collect();
        RateLimits {
            global,
            login,
            routes,
            shared,
        }
    }

    /// The global per-IP limit (`server.rate_limit_per_ip`), checked before routes.
    pub fn global(&self) -> Option<&Limiter> {
        self.global.as_deref()
    }

    /// The limit on login POSTs (`login.rate_limit_per_ip`).
    pub fn login(&self) -> &Limiter {
        &self.login
    }

    /// The limit of the route at `index` in `config.routes`, with what it is keyed by.
    pub fn route(&self, index: usize) -> Option<&(RateKey, Arc<Limiter>)> {
        self.routes.get(index)?.as_ref()
    }

    /// The Redis store the limits share, if `[redis]` is configured.
    pub fn shared(&self) -> Option<&Arc<SharedStore>> {
        self.shared.as_ref()
    }

    /// Answers without waiting when it can: no Redis configured (the local buckets), or
    /// Redis known to be unavailable (not connected, or the breaker is open: the limit's
    /// fallback). `None` means Redis must be asked: await [`RateLimits::check`]. The proxy
    /// calls this first so that the common local path needs no future at all.
    pub fn check_fast(
        &self,
        limiter: &Limiter,
        key: LimitKey<'_>,
    ) -> Option<(Verdict, Option<RedisFallback>)> {
        match &self.shared {
            None => Some((limiter.check_local(key), None)),
            Some(shared) if !shared.available() => Some(fallback(limiter, key)),
            Some(_) => None,
        }
    }

    /// Checks one limit: on Redis when configured, else locally. When Redis fails, the
    /// limit's `on_redis_error` applies (`local`: this instance's buckets, `deny`:
    /// [`Verdict::Unavailable`]) and is returned as the second value, to be counted.
    pub async fn check(
        &self,
        limiter: &Limiter,
        key: LimitKey<'_>,
    ) -> (Verdict, Option<RedisFallback>) {
        let Some(shared) = &self.shared else {
            return (limiter.check_local(key), None);
        };
        match shared.check(limiter.label(), key, limiter.spec()).await {
            Ok(verdict) => (verdict, None),
            Err(()) => fallback(limiter, key),
        }
    }

    /// Drops idle keys of every limiter (periodic upkeep).
    pub fn evict_idle(&self) {
        self.all().for_each(Limiter::evict_idle);
    }

    /// Every limiter of this snapshot: global, login, then routes in file order.
    pub fn all(&self) -> impl Iterator<Item = &Limiter> {
        self.global
            .as_deref()
            .into_iter()
            .chain(std::iter::once(&*self.login))
            .chain(self.routes.iter().flatten().map(|(_, limiter)| &**limiter))
    }
}

/// The limit's answer when Redis did not give one.
fn fallback(limiter: &Limiter, key: LimitKey<'_>) -> (Verdict, Option<RedisFallback>) {
    match limiter.spec().on_redis_error {
        RedisFallback::Local => (limiter.check_local(key), Some(RedisFallback::Local)),
        RedisFallback::Deny => (Verdict::Unavailable, Some(RedisFallback::Deny)),
    }
}

impl fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimits")
            .field("limiters", &self.all().collect::<Vec<_>>())
            .field("shared", &self.shared)
            .finish()
    }
}
