//! The Prometheus registry: every metric and label name as a constant,
//! the metrics the data plane records, and bounded label values for the hot path.

use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Metric names (docs/reference.md, Metrics).
pub mod names {
    pub const HTTP_REQUESTS_TOTAL: &str = "partnergate_http_requests_total";
    pub const HTTP_REQUEST_DURATION_SECONDS: &str = "partnergate_http_request_duration_seconds";
    pub const UPSTREAM_REQUEST_DURATION_SECONDS: &str =
        "partnergate_upstream_request_duration_seconds";
    pub const UPSTREAM_HEALTHY: &str = "partnergate_upstream_healthy";
    pub const LOGINS_TOTAL: &str = "partnergate_logins_total";
    pub const FORWARD_AUTH_REQUESTS_TOTAL: &str = "partnergate_forward_auth_requests_total";
    pub const AUDIT_CHAIN_VALID: &str = "partnergate_audit_chain_valid";
    pub const TRACE_SPANS_DROPPED_TOTAL: &str = "partnergate_trace_spans_dropped_total";
    pub const LOGIN_LOCKOUTS_TOTAL: &str = "partnergate_login_lockouts_total";
    pub const SESSIONS_ACTIVE: &str = "partnergate_sessions_active";
    pub const USERS: &str = "partnergate_users";
    pub const USERS_ACTIVE: &str = "partnergate_users_active";
    pub const ORGS: &str = "partnergate_orgs";
    pub const POLICY_DENIALS_TOTAL: &str = "partnergate_policy_denials_total";
    pub const RATELIMIT_REJECTIONS_TOTAL: &str = "partnergate_ratelimit_rejections_total";
    pub const DIRECTORY_CACHE_REQUESTS_TOTAL: &str = "partnergate_directory_cache_requests_total";
    pub const CONFIG_RELOADS_TOTAL: &str = "partnergate_config_reloads_total";
    pub const BUILD_INFO: &str = "partnergate_build_info";
    /// Beyond the core set: access log lines lost because the queue was full or the
    /// writer had stopped.
    pub const ACCESS_LOG_DROPPED_TOTAL: &str = "partnergate_access_log_dropped_total";
    /// Beyond the core set: rate-limit checks Redis could not answer, by the fallback taken.
    pub const RATELIMIT_FALLBACKS_TOTAL: &str = "partnergate_ratelimit_fallbacks_total";
    /// Beyond the core set: directory changes (suspensions, revocations, imports) this
    /// instance has applied to its caches.
    pub const DIRECTORY_CHANGES_APPLIED_TOTAL: &str = "partnergate_directory_changes_applied_total";
    /// Beyond the core set: WebSocket connections and HTTP/2 (and event-stream) responses
    /// cut because their user was revoked.
    pub const STREAMS_CLOSED_TOTAL: &str = "partnergate_streams_closed_total";
    /// Beyond the core set: requests not counted in the usage data because the in-memory
    /// counter was at its key cap.
    pub const USAGE_DROPPED_TOTAL: &str = "partnergate_usage_dropped_total";
    pub const MAIL_TOTAL: &str = "partnergate_mail_total";
    pub const MAIL_OUTBOX_DEPTH: &str = "partnergate_mail_outbox_depth";
}

/// Label names used by the metrics above.
pub mod labels {
    pub const ROUTE: &str = "route";
    pub const METHOD: &str = "method";
    pub const STATUS: &str = "status";
    pub const DECISION: &str = "decision";
    pub const UPSTREAM: &str = "upstream";
    pub const ADDR: &str = "addr";
    pub const ORG: &str = "org";
    pub const RESULT: &str = "result";
    pub const KIND: &str = "kind";
    pub const WINDOW: &str = "window";
    pub const REASON: &str = "reason";
    pub const KEY: &str = "key";
    pub const VERSION: &str = "version";
    pub const ACTION: &str = "action";
}

/// Values of the `result` label of `partnergate_config_reloads_total`.
pub mod reload_result {
    pub const SUCCESS: &str = "success";
    pub const ERROR: &str = "error";
}

/// The `window` label of `partnergate_users_active` and its length in seconds.
pub const USER_WINDOWS: [(&str, i64); 3] =
    [("1d", 86_400), ("7d", 7 * 86_400), ("30d", 30 * 86_400)];

/// Seconds; from sub-millisecond local answers to the longest sensible upstream wait.
const DURATION_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The metrics the data plane records, in their own registry.
pub struct Metrics {
    pub http_requests: IntCounterVec,
    pub request_duration: HistogramVec,
    pub upstream_duration: HistogramVec,
    pub upstream_healthy: IntGaugeVec,
    pub config_reloads: IntCounterVec,
    pub access_log_dropped: IntCounter,
    pub logins: IntCounterVec,
    /// Spans the exporter could not keep up with.
    pub trace_spans_dropped: IntCounter,
    /// Forward-auth checks answered, by mode and decision.
    pub forward_auth: IntCounterVec,
    /// 1 when the last background check of the audit chain passed, 0 when it found a
    /// broken record (absent until the first check).
    pub audit_chain_valid: IntGaugeVec,
    pub login_lockouts: IntCounterVec,
    pub sessions_active: IntGauge,
    pub users: IntGaugeVec,
    pub users_active: IntGaugeVec,
    pub orgs: IntGaugeVec,
    pub directory_cache: IntCounterVec,
    pub policy_denials: IntCounterVec,
    pub ratelimit_rejections: IntCounterVec,
    pub ratelimit_fallbacks: IntCounterVec,
    pub directory_changes_applied: IntCounter,
    pub streams_closed: IntCounter,
    pub usage_dropped: IntCounter,
    pub mail: IntCounterVec,
    pub mail_outbox_depth: IntGauge,
    registry: Registry,
}

impl Metrics {
    pub fn new() -> Self {
        use labels::*;
        let registry = Registry::new();
        let reg = Register(&registry);
        reg.build_info();
        let metrics = Metrics {
            http_requests: reg.counter_vec(
                names::HTTP_REQUESTS_TOTAL,
                "Requests answered on the public listeners, by route, method, status and policy decision.",
                &[ROUTE, METHOD, STATUS, DECISION],
            ),
            request_duration: reg.histogram_vec(
                names::HTTP_REQUEST_DURATION_SECONDS,
                "Time from receiving a request to finishing its response, in seconds.",
                &[ROUTE],
            ),
            upstream_duration: reg.histogram_vec(
                names::UPSTREAM_REQUEST_DURATION_SECONDS,
                "Time spent waiting on the upstream for a forwarded request, in seconds.",
                &[UPSTREAM],
            ),
            upstream_healthy: reg.gauge_vec(
                names::UPSTREAM_HEALTHY,
                "1 if the upstream address passes its health check, 0 if not.",
                &[UPSTREAM, ADDR],
            ),
            config_reloads: reg.counter_vec(
                names::CONFIG_RELOADS_TOTAL,
                "Configuration reloads (SIGHUP or POST /reload), by result.",
                &[RESULT],
            ),
            access_log_dropped: reg.counter(
                names::ACCESS_LOG_DROPPED_TOTAL,
                "Access log lines dropped because the queue was full or could not be written.",
            ),
            logins: reg.counter_vec(
                names::LOGINS_TOTAL,
                "Sign-in steps by org (top orgs, the rest as other), result and method (password, otp, passkey, sso).",
                &[ORG, RESULT, "method"],
            ),
            trace_spans_dropped: reg.counter(
                names::TRACE_SPANS_DROPPED_TOTAL,
                "Request spans dropped because the OTLP exporter's queue was full.",
            ),
            forward_auth: reg.counter_vec(
                names::FORWARD_AUTH_REQUESTS_TOTAL,
                "Forward-auth checks answered for another proxy, by mode (nginx, envoy, traefik) and decision.",
                &["mode", "decision"],
            ),
            audit_chain_valid: reg.gauge_vec(
                names::AUDIT_CHAIN_VALID,
                "1 when the last background check of the audit log's hash chain passed, 0 when it found a broken record.",
                &[],
            ),
            login_lockouts: reg.counter_vec(
                names::LOGIN_LOCKOUTS_TOTAL,
                "Lockouts started, per account or per client IP.",
                &[KIND],
            ),
            sessions_active: reg.gauge(
                names::SESSIONS_ACTIVE,
                "Login sessions not yet expired (refreshed every few seconds).",
            ),
            users: reg.gauge_vec(names::USERS, "Users in the directory by status.", &[STATUS]),
            users_active: reg.gauge_vec(
                names::USERS_ACTIVE,
                "Users with a login or a request within the window.",
                &[WINDOW],
            ),
            orgs: reg.gauge_vec(names::ORGS, "Orgs in the directory by status.", &[STATUS]),
            policy_denials: reg.counter_vec(
                names::POLICY_DENIALS_TOTAL,
                "Requests the route policy denied (or would deny, in shadow mode), by route and reason.",
                &[ROUTE, REASON],
            ),
            ratelimit_rejections: reg.counter_vec(
                names::RATELIMIT_REJECTIONS_TOTAL,
                "Requests refused with 429 by a rate limit, by route and limit key (ip, user, org, route; global; login).",
                &[ROUTE, KEY],
            ),
            ratelimit_fallbacks: reg.counter_vec(
                names::RATELIMIT_FALLBACKS_TOTAL,
                "Rate-limit checks Redis could not answer, by route and the fallback taken (local, deny).",
                &[ROUTE, ACTION],
            ),
            directory_cache: reg.counter_vec(
                names::DIRECTORY_CACHE_REQUESTS_TOTAL,
                "Identity and session lookups answered from the cache (hit) or the store (miss).",
                &[RESULT],
            ),
            directory_changes_applied: reg.counter(
                names::DIRECTORY_CHANGES_APPLIED_TOTAL,
                "Directory changes (suspensions, revocations, imports) applied to this instance's caches.",
            ),
            streams_closed: reg.counter(
                names::STREAMS_CLOSED_TOTAL,
                "Open WebSocket connections and streamed responses closed because their user is no longer allowed (suspended, logged out everywhere, access revoked).",
            ),
            usage_dropped: reg.counter(
                names::USAGE_DROPPED_TOTAL,
                "Requests left out of the usage data because the in-memory counter held its maximum number of keys.",
            ),
            mail: reg.counter_vec(
                names::MAIL_TOTAL,
                "Mail delivery attempts by kind (invitation, password_reset, account_locked) and result (sent, retry, failed).",
                &[KIND, RESULT],
            ),
            mail_outbox_depth: reg.gauge(
                names::MAIL_OUTBOX_DEPTH,
                "Mails in the outbox not sent yet (and not given up on).",
            ),
            registry,
        };
        for kind in crate::directory::MailKind::ALL {
            for result in ["sent", "retry", "failed"] {
                metrics.mail.with_label_values(&[kind.as_str(), result]);
            }
        }
        for kind in ["account", "ip"] {
            metrics.login_lockouts.with_label_values(&[kind]);
        }
        for result in ["hit", "miss"] {
            metrics.directory_cache.with_label_values(&[result]);
        }
        for status in ["active", "invited", "suspended", "disabled"] {
            metrics.users.with_label_values(&[status]);
        }
        for status in ["pending", "active", "suspended", "offboarded"] {
            metrics.orgs.with_label_values(&[status]);
        }
        for window in USER_WINDOWS {
            metrics.users_active.with_label_values(&[window.0]);
        }
        // Both results exist from the start so that rate() and alerts see a zero.
        for result in [reload_result::SUCCESS, reload_result::ERROR] {
            metrics.config_reloads.with_label_values(&[result]);
        }
        metrics
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The registry in the Prometheus text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = TextEncoder::new().encode_utf8(&self.registry.gather(), &mut out) {
            tracing::error!("encoding metrics failed: {e}");
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Creates and registers metrics. The definitions are constants, so a failure is a
/// programming error caught by the tests, not a runtime condition.
struct Register<'a>(&'a Registry);

impl Register<'_> {
    fn add<C: prometheus::core::Collector + Clone + 'static>(&self, c: C) -> C {
        self.0
            .register(Box::new(c.clone()))
            .expect("metric definitions are unique and valid");
        c
    }

    fn counter(&self, name: &str, help: &str) -> IntCounter {
        self.add(IntCounter::with_opts(Opts::new(name, help)).expect("valid counter"))
    }

    fn counter_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        self.add(IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter"))
    }

    fn gauge(&self, name: &str, help: &str) -> IntGauge {
        self.add(IntGauge::with_opts(Opts::new(name, help)).expect("valid gauge"))
    }

    fn gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        self.add(IntGaugeVec::new(Opts::new(name, help), labels).expect("valid gauge"))
    }

    fn histogram_vec(&self, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
        let opts = HistogramOpts::new(name, help).buckets(DURATION_BUCKETS.to_vec());
        self.add(HistogramVec::new(opts, labels).expect("valid histogram"))
    }

    fn build_info(&self) {
        let opts = Opts::new(
            names::BUILD_INFO,
            "Always 1; the version label names the running build.",
        )
        .const_label(labels::VERSION, env!("CARGO_PKG_VERSION"));
        self.add(IntGauge::with_opts(opts).expect("valid gauge"))
            .set(1);
    }
}

/// Bounded values for the `org` label: the first `top` orgs seen keep their id, the
/// rest count as `other`. Orgs seen early are the active ones in practice:
/// the set is rebuilt from login counts on restart.
pub struct OrgLabels {
    top: usize,
    known: std::sync::RwLock<std::collections::HashSet<String>>,
}

pub const OTHER_ORG: &str = "other";
/// The `org` label of a login attempt whose email names no user.
pub const NO_ORG: &str = "none";

impl OrgLabels {
    pub fn new(top: usize) -> Self {
        OrgLabels {
            top,
            known: Default::default(),
        }
    }

    pub fn label<'a>(&self, org: &'a str) -> &'a str {
        if let Ok(known) = self.known.read() {
            if known.contains(org) {
                return org;
            }
            if known.len() >= self.top {
                return OTHER_ORG;
            }
        }
        match self.known.write() {
            Ok(mut known) if known.len() < self.top => {
                known.insert(org.to_string());
                org
            }
            Ok(known) if known.contains(org) => org,
            _ => OTHER_ORG,
        }
    }
}

/// What the login page counts.
pub struct LoginMetrics {
    pub logins: IntCounterVec,
    pub lockouts: IntCounterVec,
    pub orgs: OrgLabels,
}

impl LoginMetrics {
    pub fn new(metrics: &Metrics, top_orgs: usize) -> Self {
        LoginMetrics {
            logins: metrics.logins.clone(),
            lockouts: metrics.login_lockouts.clone(),
            orgs: OrgLabels::new(top_orgs),
        }
    }

    pub fn login(&self, org: Option<&str>, result: &str, method: &str) {
        let org = org.map_or(NO_ORG, |o| self.orgs.label(o));
        self.logins.with_label_values(&[org, result, method]).inc();
    }

    pub fn lockout(&self, kind: &str) {
        self.lockouts.with_label_values(&[kind]).inc();
    }
}

/// The metric handles of one `route` label value, resolved when a configuration is
/// loaded, so that counting a request hashes no label values. Counters for label sets
/// not seen yet are created on first use and kept (a few per method and decision).
pub struct RouteMetrics {
    name: Box<str>,
    requests: IntCounterVec,
    /// `[method][decision][way]`: the counter of the last statuses seen for that pair.
    request_slots: Box<[std::sync::OnceLock<(u16, IntCounter)>]>,
    duration: prometheus::Histogram,
    denials: IntCounterVec,
    denial_slots: Box<[std::sync::OnceLock<IntCounter>]>,
    rejections: IntCounterVec,
    rejection_slots: Box<[std::sync::OnceLock<IntCounter>]>,
}

/// Methods with their own `method` label value, then `other`.
const METHOD_SLOTS: usize = 10;
/// Statuses remembered per method and decision before falling back to a lookup.
const STATUS_WAYS: usize = 2;

impl RouteMetrics {
    /// Handles for route `name`; `decisions` decision values, `reasons` deny reasons and
    /// `keys` rate-limit key labels, each addressed by its index.
    pub fn new(
        metrics: &Metrics,
        name: &str,
        decisions: usize,
        reasons: usize,
        keys: usize,
    ) -> Self {
        RouteMetrics {
            name: name.into(),
            requests: metrics.http_requests.clone(),
            request_slots: empty_slots(METHOD_SLOTS * decisions * STATUS_WAYS),
            duration: metrics.request_duration.with_label_values(&[name]),
            denials: metrics.policy_denials.clone(),
            denial_slots: empty_slots(reasons),
            rejections: metrics.ratelimit_rejections.clone(),
            rejection_slots: empty_slots(keys),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Count one answered request.
    pub fn request(&self, method: &http::Method, status: u16, decision: (usize, &str)) {
        let method_label = method_label(method.as_str());
        let m = METHOD_LABELS
            .iter()
            .position(|l| *l == method_label)
            .unwrap_or(METHOD_SLOTS - 1);
        let base = (m * (self.request_slots.len() / METHOD_SLOTS / STATUS_WAYS) + decision.0)
            * STATUS_WAYS;
        let make = || {
            self.requests.with_label_values(&[
                &self.name,
                method_label,
                status_label(status),
                decision.1,
            ])
        };
        for way in self.request_slots.iter().skip(base).take(STATUS_WAYS) {
            let (seen, counter) = way.get_or_init(|| (status, make()));
            if *seen == status {
                counter.inc();
                return;
            }
        }
        make().inc();
    }

    pub fn observe_duration(&self, seconds: f64) {
        self.duration.observe(seconds);
    }

    /// Count a policy denial (also a shadow one) under deny reason `index`, `reason`.
    pub fn denied(&self, index: usize, reason: &str) {
        self.slot(&self.denial_slots, index, &self.denials, reason)
            .inc();
    }

    /// Count a rate-limit rejection under key label `index`, `key`.
    pub fn rate_limited(&self, index: usize, key: &str) {
        self.slot(&self.rejection_slots, index, &self.rejections, key)
            .inc();
    }

    fn slot<'a>(
        &'a self,
        slots: &'a [std::sync::OnceLock<IntCounter>],
        index: usize,
        vec: &IntCounterVec,
        label: &str,
    ) -> std::borrow::Cow<'a, IntCounter> {
        match slots.get(index) {
            Some(slot) => std::borrow::Cow::Borrowed(
                slot.get_or_init(|| vec.with_label_values(&[&self.name, label])),
            ),
            None => std::borrow::Cow::Owned(vec.with_label_values(&[&self.name, label])),
        }
    }
}

impl std::fmt::Debug for RouteMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteMetrics")
            .field("route", &self.name)
            .finish()
    }
}

fn empty_slots<T>(n: usize) -> Box<[std::sync::OnceLock<T>]> {
    (0..n).map(|_| std::sync::OnceLock::new()).collect()
}

const METHOD_LABELS: [&str; METHOD_SLOTS - 1] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// The `method` label: the standard methods as themselves, anything else `other`.
pub fn method_label(m: &str) -> &'static str {
    match m {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "CONNECT" => "CONNECT",
        "OPTIONS" => "OPTIONS",
        "TRACE" => "TRACE",
        "PATCH" => "PATCH",
        _ => "other",
    }
}

macro_rules! status_codes {
    ($code:expr; $($known:literal)*) => {
        match $code {
            $($known => stringify!($known),)*
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            500..=599 => "5xx",
            _ => "other",
        }
    };
}

/// The `status` label: common codes as themselves, other valid codes as their class
/// (`4xx`), anything outside 100–599 (0 = no response was sent) as `other`.
pub fn status_label(code: u16) -> &'static str {
    status_codes!(code;
        100 101 103
        200 201 202 203 204 205 206 207
        300 301 302 303 304 307 308
        400 401 402 403 404 405 406 407 408 409 410 411 412 413 414 415 416 417 418
        421 422 423 424 425 426 428 429 431 451
        500 501 502 503 504 505 506 507 508 510 511
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercised() -> Metrics {
        let m = Metrics::new();
        m.http_requests
            .with_label_values(&["dashboard", "GET", "200", "allow"])
            .inc();
        m.request_duration
            .with_label_values(&["dashboard"])
            .observe(0.002);
        m.upstream_duration
            .with_label_values(&["portal"])
            .observe(0.001);
        m.upstream_healthy
            .with_label_values(&["portal", "127.0.0.1:9000"])
            .set(1);
        m.config_reloads
            .with_label_values(&[reload_result::SUCCESS])
            .inc();
        m.access_log_dropped.inc();
        m
    }

    #[test]
    fn encode_has_help_and_type_for_every_registered_metric() {
        let text = exercised().encode();
        for (name, kind) in [
            (names::HTTP_REQUESTS_TOTAL, "counter"),
            (names::HTTP_REQUEST_DURATION_SECONDS, "histogram"),
            (names::UPSTREAM_REQUEST_DURATION_SECONDS, "histogram"),
            (names::UPSTREAM_HEALTHY, "gauge"),
            (names::CONFIG_RELOADS_TOTAL, "counter"),
            (names::ACCESS_LOG_DROPPED_TOTAL, "counter"),
            (names::BUILD_INFO, "gauge"),
        ] {
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "no HELP for {name}:\n{text}"
            );
            assert!(
                text.contains(&format!("# TYPE {name} {kind}\n")),
                "no TYPE for {name}:\n{text}"
            );
        }
        let build = format!(
            "{}{{version=\"{}\"}} 1\n",
            names::BUILD_INFO,
            env!("CARGO_PKG_VERSION")
        );
        assert!(text.contains(&build), "{text}");
        assert!(text.contains(
            "partnergate_http_request_duration_seconds_bucket{route=\"dashboard\",le=\"0.0025\"} 1"
        ));
        assert!(text.contains("partnergate_access_log_dropped_total 1\n"));
    }

    #[test]
    fn fresh_registry_shows_build_info_drops_and_both_reload_results() {
        let text = Metrics::default().encode();
        assert!(text.contains("partnergate_build_info{version="));
        assert!(text.contains("partnergate_access_log_dropped_total 0\n"));
        assert!(text.contains("partnergate_config_reloads_total{result=\"success\"} 0\n"));
        assert!(text.contains("partnergate_config_reloads_total{result=\"error\"} 0\n"));
    }

    #[test]
    fn every_name_is_prefixed_and_distinct() {
        let all = [
            names::HTTP_REQUESTS_TOTAL,
            names::HTTP_REQUEST_DURATION_SECONDS,
            names::UPSTREAM_REQUEST_DURATION_SECONDS,
            names::UPSTREAM_HEALTHY,
            names::LOGINS_TOTAL,
            names::LOGIN_LOCKOUTS_TOTAL,
            names::SESSIONS_ACTIVE,
            names::USERS,
            names::USERS_ACTIVE,
            names::ORGS,
            names::POLICY_DENIALS_TOTAL,
            names::RATELIMIT_REJECTIONS_TOTAL,
            names::DIRECTORY_CACHE_REQUESTS_TOTAL,
            names::CONFIG_RELOADS_TOTAL,
            names::BUILD_INFO,
            names::ACCESS_LOG_DROPPED_TOTAL,
            names::RATELIMIT_FALLBACKS_TOTAL,
            names::DIRECTORY_CHANGES_APPLIED_TOTAL,
            names::STREAMS_CLOSED_TOTAL,
            names::USAGE_DROPPED_TOTAL,
        ];
        let distinct: std::collections::HashSet<_> = all.iter().collect();
        let text = Metrics::new().encode();
        for name in all {
            let lazy = [
                names::HTTP_REQUESTS_TOTAL,
                names::HTTP_REQUEST_DURATION_SECONDS,
                names::UPSTREAM_REQUEST_DURATION_SECONDS,
                names::UPSTREAM_HEALTHY,
                names::POLICY_DENIALS_TOTAL,
                names::RATELIMIT_REJECTIONS_TOTAL,
                names::RATELIMIT_FALLBACKS_TOTAL,
                names::LOGINS_TOTAL,
            ];
            if !lazy.contains(&name) {
                assert!(
                    text.contains(&format!("# TYPE {name} ")),
                    "{name} not registered"
                );
            }
        }
        assert_eq!(distinct.len(), all.len());
        assert!(all.iter().all(|n| n.starts_with("partnergate_")));
    }

    #[test]
    fn org_label_is_capped() {
        let orgs = OrgLabels::new(2);
        assert_eq!(orgs.label("a"), "a");
        assert_eq!(orgs.label("b"), "b");
        assert_eq!(orgs.label("c"), OTHER_ORG);
        assert_eq!(orgs.label("a"), "a");
    }

    #[test]
    fn method_label_is_bounded() {
        for (method, label) in [
            ("GET", "GET"),
            ("HEAD", "HEAD"),
            ("POST", "POST"),
            ("PUT", "PUT"),
            ("DELETE", "DELETE"),
            ("CONNECT", "CONNECT"),
            ("OPTIONS", "OPTIONS"),
            ("TRACE", "TRACE"),
            ("PATCH", "PATCH"),
            ("get", "other"),
            ("PROPFIND", "other"),
            ("", "other"),
        ] {
            assert_eq!(method_label(method), label, "{method}");
        }
    }

    #[test]
    fn status_label_is_bounded() {
        for (code, label) in [
            (200, "200"),
            (302, "302"),
            (404, "404"),
            (421, "421"),
            (429, "429"),
            (502, "502"),
            (504, "504"),
            (102, "1xx"),
            (299, "2xx"),
            (399, "3xx"),
            (499, "4xx"),
            (599, "5xx"),
            (0, "other"),
            (99, "other"),
            (600, "other"),
            (u16::MAX, "other"),
        ] {
            assert_eq!(status_label(code), label, "{code}");
        }
    }

    #[test]
    fn status_label_is_the_code_or_its_class() {
        for code in 100..=599u16 {
            let label = status_label(code);
            let class = format!("{}xx", code / 100);
            assert!(
                label == code.to_string() || label == class,
                "{code} -> {label}"
            );
        }
    }
}
