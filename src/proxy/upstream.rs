//! Upstream pools: round-robin over healthy addresses, active HTTP health checks.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use pingora::http::RequestHeader;
use pingora::lb::health_check::HttpHealthCheck;
use pingora::lb::selection::RoundRobin;
use pingora::lb::{Backend, LoadBalancer};
use pingora::protocols::tls::CaType;
use pingora::protocols::ALPN;
use pingora::upstreams::peer::{H1UpgradePolicy, HttpPeer};
use pingora::utils::tls::{parse_x509, WrappedX509};

use crate::config::UpstreamConfig;
use crate::metrics::Metrics;

/// One `[upstreams.NAME]`: its addresses, their health and how to connect.
pub struct UpstreamPool {
    pub config: UpstreamConfig,
    /// The name, shared with every log line of the upstream.
    pub label: Arc<str>,
    lb: LoadBalancer<RoundRobin>,
    ca: Option<Arc<CaType>>,
    /// `partnergate_upstream_request_duration_seconds{upstream}`, resolved on first use.
    duration: std::sync::OnceLock<prometheus::Histogram>,
}

impl std::fmt::Debug for UpstreamPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamPool")
            .field("name", &self.config.name)
            .finish()
    }
}

impl UpstreamPool {
    /// Build the pool; the error names what is wrong (a bad `ca_file`, an address).
    pub fn new(config: UpstreamConfig) -> Result<Self, String> {
        let ca = match (&config.ca_file, config.tls) {
            (Some(path), true) => {
                // load_ca_bundle validates every certificate, so parse_x509 cannot fail here.
                let certs = crate::tls::load_ca_bundle(path).map_err(|e| e.to_string())?;
                let wrapped: Vec<WrappedX509> = certs
                    .into_iter()
                    .map(|der| WrappedX509::new(der.to_vec(), parse_x509))
                    .collect();
                Some(Arc::<CaType>::from(wrapped.into_boxed_slice()))
            }
            _ => None,
        };
        let lb = LoadBalancer::<RoundRobin>::try_from_iter(config.addrs.iter().copied())
            .map_err(|e| format!("upstream {}: {e}", config.name))?;
        let mut pool = UpstreamPool {
            label: Arc::from(config.name.as_str()),
            config,
            lb,
            ca,
            duration: std::sync::OnceLock::new(),
        };
        if let Some(hc) = pool.health_check() {
            pool.lb.set_health_check(Box::new(hc));
        }
        Ok(pool)
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Count the time a forwarded request waited on this upstream.
    pub fn observe_duration(&self, metrics: &Metrics, seconds: f64) {
        self.duration
            .get_or_init(|| metrics.upstream_duration.with_label_values(&[self.name()]))
            .observe(seconds);
    }

    /// The next healthy address, round robin; `None` when none is healthy.
    pub fn select(&self) -> Option<SocketAddr> {
        let max = self.config.addrs.len().max(1) * 2;
        self.lb.select(b"", max).map(|b| b.addr_socket())
    }

    /// Whether any address is healthy (without advancing the round robin).
    pub fn any_healthy(&self) -> bool {
        self.health().iter().any(|(_, healthy)| *healthy)
    }

    pub fn len(&self) -> usize {
        self.config.addrs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.config.addrs.is_empty()
    }

    /// Health of each address, for the `upstream_healthy` gauge and `/readyz`.
    pub fn health(&self) -> Vec<(SocketAddr, bool)> {
        self.lb
            .backends()
            .get_backend()
            .iter()
            .map(|b| (b.addr_socket(), self.lb.backends().ready(b)))
            .collect()
    }

    /// How to reach `addr` for a request on a route that does (or not) allow WebSocket.
    pub fn peer(&self, addr: SocketAddr, websocket: bool) -> HttpPeer {
        let mut peer = HttpPeer::new(addr, self.config.tls, self.config.sni.clone());
        self.apply_options(&mut peer);
        peer.options.http_upstream_request_policy.h1_upgrade = if websocket {
            H1UpgradePolicy::WebSocketOnly
        } else {
            H1UpgradePolicy::Deny
        };
        peer
    }

    fn apply_options(&self, peer: &mut HttpPeer) {
        let o = &mut peer.options;
        o.connection_timeout = Some(self.config.connect_timeout);
        o.total_connection_timeout = Some(self.config.connect_timeout * 2);
        o.read_timeout = Some(self.config.read_timeout);
        o.write_timeout = Some(self.config.read_timeout);
        o.idle_timeout = Some(Duration::from_secs(60));
        o.verify_cert = true;
        o.verify_hostname = true;
        o.alpn = ALPN::H1;
        o.ca = self.ca.clone();
    }

    fn health_check(&self) -> Option<HttpHealthCheck> {
        let hc_config = self.config.health_check.as_ref()?;
        let host = if self.config.sni.is_empty() {
            "localhost"
        } else {
            &self.config.sni
        };
        let mut hc = HttpHealthCheck::new(host, self.config.tls);
        let mut req = RequestHeader::build("GET", hc_config.path.as_bytes(), None).ok()?;
        req.insert_header("Host", host).ok()?;
        req.insert_header("User-Agent", "partnergate-health-check")
            .ok()?;
        hc.req = req;
        self.apply_options(&mut hc.peer_template);
        hc.peer_template.options.read_timeout =
            Some(self.config.connect_timeout.max(Duration::from_secs(1)));
        hc.consecutive_failure = 1;
        hc.consecutive_success = 1;
        Some(hc)
    }

    /// Probe every address once and publish the result.
    pub async fn check_now(&self, metrics: &Metrics) {
        if self.config.health_check.is_some() {
            self.lb.backends().run_health_check(true).await;
        }
        for (addr, healthy) in self.health() {
            metrics
                .upstream_healthy
                .with_label_values(&[self.name(), &addr.to_string()])
                .set(i64::from(healthy));
        }
    }
}

/// Run health checks for `pool` until it is dropped (a reload replaced it) or shutdown.
pub async fn health_loop(pool: Weak<UpstreamPool>, metrics: Arc<Metrics>) {
    let interval = match pool
        .upgrade()
        .and_then(|p| p.config.health_check.as_ref().map(|h| h.interval))
    {
        Some(i) => i,
        None => {
            if let Some(p) = pool.upgrade() {
                p.check_now(&metrics).await;
            }
            return;
        }
    };
    loop {
        let Some(p) = pool.upgrade() else { return };
        p.check_now(&metrics).await;
        drop(p);
        tokio::time::sleep(interval).await;
    }
}

trait BackendAddr {
    fn addr_socket(&self) -> SocketAddr;
}

impl BackendAddr for Backend {
    fn addr_socket(&self) -> SocketAddr {
        match self.addr.as_inet() {
            Some(a) => *a,
            None => SocketAddr::from(([0, 0, 0, 0], 0)),
        }
    }
}
