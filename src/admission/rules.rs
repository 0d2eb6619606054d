//! What admission needs from one configuration: the routes compiled once per load (each
//! with its limit and its metric handles), the rate limits, and the route lookup stage.

use std::sync::Arc;

use http::Method;

use crate::config::{Config, RateKey, RouteConfig};
use crate::metrics::{Metrics, RouteMetrics};
use crate::policy::{DenyReason, RouteLookup, RouteTable};
use crate::ratelimit::{Limiter, RateLimits};

use super::clean::CleanRequest;
use super::rejection::{Decision, LimitScope, Rejection};

/// Route label of requests that matched no route.
pub const NO_ROUTE: &str = "none";
/// Route label of the gateway's own pages (`/.partnergate/…`).
pub const RESERVED_ROUTE: &str = "partnergate";

/// Rate-limit key labels a route's rejections are counted under, by index.
const KEY_LABELS: [&str; 6] = ["ip", "user", "org", "route", "global", "login"];

/// One `[[routes]]` entry of a loaded configuration, with what the request path needs
/// of it resolved up front.
#[derive(Debug)]
pub struct Route {
    pub config: RouteConfig,
    /// The name, shared with every log line of the route.
    pub label: Arc<str>,
    /// Position in the file (the proxy keeps its upstream pools in the same order).
    pub position: usize,
    /// The route's own limit and what it is keyed by.
    pub limit: Option<(RateKey, Arc<Limiter>)>,
    pub metrics: RouteMetrics,
}

impl Route {
    pub fn name(&self) -> &str {
        &self.config.name
    }
}

/// Metric handles for a route label (a real route, or `none` / `partnergate`).
pub fn route_metrics(metrics: &Metrics, name: &str) -> RouteMetrics {
    RouteMetrics::new(
        metrics,
        name,
        Decision::ALL.len(),
        DenyReason::ALL.len(),
        KEY_LABELS.len(),
    )
}

/// Count a policy denial (or a shadow one) of `route`.
pub fn count_denial(metrics: &RouteMetrics, reason: DenyReason) {
    let index = DenyReason::ALL.iter().position(|r| *r == reason);
    metrics.denied(index.unwrap_or(usize::MAX), reason.as_str());
}

/// Count a rate-limit rejection of `route`.
pub fn count_rate_limited(metrics: &RouteMetrics, scope: LimitScope) {
    let key = scope.key_label();
    let index = KEY_LABELS.iter().position(|k| *k == key);
    metrics.rate_limited(index.unwrap_or(usize::MAX), key);
}

/// A route that matched a request, with what its template captured.
#[derive(Debug, Clone)]
pub struct RouteMatch {
    pub route: Arc<Route>,
    /// What `{account}` captured.
    pub account: Option<String>,
}

/// The admission rules of one configuration.
#[derive(Debug)]
pub struct Rules {
    pub config: Arc<Config>,
    table: RouteTable,
    routes: Vec<Arc<Route>>,
    pub limits: RateLimits,
    /// Metrics of requests that matched no route, and of reserved paths.
    pub no_route: RouteMetrics,
    pub reserved: RouteMetrics,
}

impl Rules {
    pub fn new(config: Arc<Config>, limits: RateLimits, metrics: &Metrics) -> Self {
        let routes = config
            .routes
            .iter()
            .enumerate()
            .map(|(position, route)| {
                Arc::new(Route {
                    config: route.clone(),
                    label: Arc::from(route.name.as_str()),
                    position,
                    limit: limits.route(position).cloned(),
                    metrics: route_metrics(metrics, &route.name),
                })
            })
            .collect();
        Rules {
            table: RouteTable::new(config.clone()),
            config,
            routes,
            limits,
            no_route: route_metrics(metrics, NO_ROUTE),
            reserved: route_metrics(metrics, RESERVED_ROUTE),
        }
    }

    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }

    pub fn table(&self) -> &RouteTable {
        &self.table
    }

    /// Stage route: the first route matching host, path and method. A path whose only
    /// matching routes exclude the method is a `method` denial on the first of them, so
    /// two routes may share a path with different methods; no match is `no_route`.
    pub fn route(
        &self,
        request: &CleanRequest,
        method: &Method,
    ) -> Result<RouteMatch, (Option<Arc<Route>>, Rejection)> {
        let (found, denied) = match self.table.lookup(&request.host, &request.path, method) {
            RouteLookup::Matched(m) => (m, false),
            RouteLookup::MethodNotAllowed(m) => (m, true),
            RouteLookup::NoRoute => return Err((None, Rejection::denied(DenyReason::NoRoute))),
        };
        let route = self.routes.get(found.index).cloned();
        let Some(route) = route else {
            return Err((None, Rejection::denied(DenyReason::NoRoute)));
        };
        if denied {
            return Err((Some(route), Rejection::denied(DenyReason::Method)));
        }
        if request.websocket && !route.config.websocket {
            return Err((Some(route), Rejection::websocket_not_allowed()));
        }
        Ok(RouteMatch {
            account: found.account.map(str::to_string),
            route,
        })
    }
}
