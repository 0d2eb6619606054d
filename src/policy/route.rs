//! First-match route lookup (CONTRACT §2 `[[routes]]`).
//!
//! A route matches on host and path. `methods` narrows a route too, so two routes may
//! share a path with different methods; when a path matches only routes whose methods
//! exclude the request's, the lookup says so, and the caller denies with reason `method`
//! rather than pretending no route exists.

use std::sync::Arc;

use http::Method;

use crate::config::{Config, RouteConfig};

/// The routes of one configuration snapshot, in file order.
#[derive(Debug, Clone)]
pub struct RouteTable {
    config: Arc<Config>,
}

/// A route that matched, with what its template captured.
#[derive(Debug, Clone, Copy)]
pub struct RouteMatch<'a> {
    pub index: usize,
    pub route: &'a RouteConfig,
    pub account: Option<&'a str>,
}

#[derive(Debug, Clone, Copy)]
pub enum RouteLookup<'a> {
    Matched(RouteMatch<'a>),
    /// Host and path matched this route (the first such), but not the method.
    MethodNotAllowed(RouteMatch<'a>),
    NoRoute,
}

impl RouteTable {
    pub fn new(config: Arc<Config>) -> Self {
        RouteTable { config }
    }

    pub fn routes(&self) -> &[RouteConfig] {
        &self.config.routes
    }

    pub fn get(&self, index: usize) -> Option<&RouteConfig> {
        self.config.routes.get(index)
    }

    /// `host` lower-case without port, `path` normalised.
    pub fn lookup<'a>(&'a self, host: &str, path: &'a str, method: &Method) -> RouteLookup<'a> {
        let mut wrong_method = None;
        for (index, route) in self.config.routes.iter().enumerate() {
            if route.host.as_ref().is_some_and(|h| !h.matches(host)) {
                continue;
            }
            let Some(captures) = route.path.matches(path) else {
                continue;
            };
            let found = RouteMatch {
                index,
                route,
                account: captures.account,
            };
            if method_allowed(route, method) {
                return RouteLookup::Matched(found);
            }
            wrong_method.get_or_insert(found);
        }
        match wrong_method {
            Some(found) => RouteLookup::MethodNotAllowed(found),
            None => RouteLookup::NoRoute,
        }
    }
}

fn method_allowed(route: &RouteConfig, method: &Method) -> bool {
    route.methods.as_ref().is_none_or(|ms| ms.contains(method))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn table() -> RouteTable {
        let text = r#"
[server]
listen = "127.0.0.1:8080"
[upstreams.portal]
addrs = ["127.0.0.1:9000"]
[[routes]]
name = "client"
path = "/clients/{account}/"
upstream = "portal"
[[routes]]
name = "reports-read"
host = "partners.example.com"
path = "/reports"
methods = ["GET"]
upstream = "portal"
[[routes]]
name = "wild"
host = "*.example.com"
path = "/reports"
methods = ["GET", "POST"]
upstream = "portal"
[[routes]]
name = "api-post"
path = "/api"
methods = ["POST"]
upstream = "portal"
[[routes]]
name = "dashboard"
host = "partners.example.com"
path = "/dashboard"
upstream = "portal"
"#;
        let loaded = Config::from_toml(Path::new("t.toml"), text).expect("valid config");
        RouteTable::new(Arc::new(loaded.config))
    }

    fn name(lookup: RouteLookup<'_>) -> String {
        match lookup {
            RouteLookup::Matched(m) => format!(
                "{}{}",
                m.route.name,
                m.account.map(|a| format!(":{a}")).unwrap_or_default()
            ),
            RouteLookup::MethodNotAllowed(m) => format!("method!{}", m.route.name),
            RouteLookup::NoRoute => "none".into(),
        }
    }

    #[test]
    fn first_match_by_host_path_method() {
        let t = table();
        let cases = [
            (
                "partners.example.com",
                "/clients/c-1/x",
                Method::GET,
                "client:c-1",
            ),
            ("other.org", "/clients/c-1/", Method::DELETE, "client:c-1"),
            (
                "partners.example.com",
                "/reports/q3",
                Method::GET,
                "reports-read",
            ),
            ("partners.example.com", "/reports", Method::POST, "wild"),
            ("a.example.com", "/reports", Method::GET, "wild"),
            ("a.example.com", "/reports", Method::DELETE, "method!wild"),
            ("x.org", "/api/v1", Method::GET, "method!api-post"),
            ("x.org", "/api/v1", Method::POST, "api-post"),
            (
                "partners.example.com",
                "/dashboard",
                Method::GET,
                "dashboard",
            ),
            ("other.example.com", "/dashboard", Method::GET, "none"),
            ("partners.example.com", "/", Method::GET, "none"),
        ];
        for (host, path, method, want) in cases {
            assert_eq!(
                name(t.lookup(host, path, &method)),
                want,
                "{method} {host}{path}"
            );
        }
    }
}
