//! First-match lookup over the configured `[[routes]]`.
//!
//! A route matches on host and path. `methods` narrows a route too, so two routes may
//! share a path with different methods; when a path matches only routes whose methods
//! exclude the request's, the lookup says so, and the caller denies with reason `method`
//! rather than pretending no route exists.

use std::sync::Arc;

use http::Method;

use crate::config::{Config, PathCaptures, RouteConfig};

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

/// Why one route did or did not match a request, for `partnergate explain`: each part
/// of the match is checked (not only up to the first mismatch), so all reasons show.
#[derive(Debug, Clone, Copy)]
pub struct RouteTrace<'a> {
    pub index: usize,
    pub route: &'a RouteConfig,
    /// The route names no host, or the request's host matches it.
    pub host: bool,
    /// What the path template captured; `None`: the path does not match.
    pub path: Option<PathCaptures<'a>>,
    /// The route has no `methods`, or they include the request's method.
    pub method: bool,
}

impl RouteTrace<'_> {
    /// Host, path and method all match: the route [`RouteTable::lookup`] picks.
    pub fn matched(&self) -> bool {
        self.host && self.path.is_some() && self.method
    }

    /// Host and path match but the method does not (a `method` denial if no later
    /// route matches).
    pub fn wrong_method(&self) -> bool {
        self.host && self.path.is_some() && !self.method
    }
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

    /// Every route [`RouteTable::lookup`] looks at for this request, in file order, with
    /// why it matched or not: up to and including the matching route, or all of them when
    /// none matches. Slower than `lookup` (it checks every part of every route); for
    /// `partnergate explain`, never the request path.
    pub fn trace<'a>(&'a self, host: &str, path: &'a str, method: &Method) -> Vec<RouteTrace<'a>> {
        let mut seen = Vec::new();
        for (index, route) in self.config.routes.iter().enumerate() {
            let trace = RouteTrace {
                index,
                route,
                host: route.host.as_ref().is_none_or(|h| h.matches(host)),
                path: route.path.matches(path),
                method: method_allowed(route, method),
            };
            let done = trace.matched();
            seen.push(trace);
            if done {
                break;
            }
        }
        seen
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

    /// (route name, host ok, path ok, method ok) for each traced route.
    fn traced(t: &RouteTable, host: &str, path: &str, method: &Method) -> Vec<String> {
        t.trace(host, path, method)
            .iter()
            .map(|r| {
                let flag = |ok: bool, what: &str| {
                    if ok {
                        what.to_string()
                    } else {
                        format!("!{what}")
                    }
                };
                format!(
                    "{}:{}{}{}{}",
                    r.route.name,
                    flag(r.host, "h"),
                    flag(r.path.is_some(), "p"),
                    flag(r.method, "m"),
                    r.path
                        .and_then(|c| c.account)
                        .map(|a| format!("={a}"))
                        .unwrap_or_default(),
                )
            })
            .collect()
    }

    #[test]
    fn trace_stops_at_the_match_and_gives_every_reason() {
        let t = table();
        assert_eq!(
            traced(&t, "partners.example.com", "/clients/c-1/x", &Method::GET),
            ["client:hpm=c-1"]
        );
        assert_eq!(
            traced(&t, "partners.example.com", "/reports/q3", &Method::POST),
            ["client:h!pm", "reports-read:hp!m", "wild:hpm"]
        );
        // No match: every route, each with all of its reasons.
        assert_eq!(
            traced(&t, "other.example.com", "/dashboard", &Method::DELETE),
            [
                "client:h!pm",
                "reports-read:!h!p!m",
                "wild:h!p!m",
                "api-post:h!p!m",
                "dashboard:!hpm",
            ]
        );
        let wrong = t.trace("a.example.com", "/reports", &Method::DELETE);
        assert_eq!(wrong.len(), 5);
        assert!(!wrong.iter().any(RouteTrace::matched));
        let first_wrong = wrong
            .iter()
            .find(|r| r.wrong_method())
            .map(|r| r.route.name.as_str());
        assert_eq!(first_wrong, Some("wild"));
    }

    #[test]
    fn trace_agrees_with_lookup() {
        let t = table();
        let hosts = [
            "partners.example.com",
            "a.example.com",
            "example.com",
            "x.org",
        ];
        let paths = [
            "/",
            "/clients/c-1/x",
            "/clients//x",
            "/reports",
            "/reports/q3",
            "/api/v1",
            "/dashboard",
        ];
        let methods = [Method::GET, Method::POST, Method::DELETE];
        for host in hosts {
            for path in paths {
                for method in &methods {
                    let trace = t.trace(host, path, method);
                    let last = trace.last().filter(|r| r.matched());
                    let first_wrong = trace.iter().find(|r| r.wrong_method());
                    let case = format!("{method} {host}{path}");
                    match t.lookup(host, path, method) {
                        RouteLookup::Matched(m) => {
                            let last = last.unwrap_or_else(|| panic!("{case}: trace has no match"));
                            assert_eq!(last.index, m.index, "{case}");
                            assert_eq!(last.path.and_then(|c| c.account), m.account, "{case}");
                            assert!(
                                trace[..trace.len() - 1].iter().all(|r| !r.matched()),
                                "{case}"
                            );
                        }
                        RouteLookup::MethodNotAllowed(m) => {
                            assert!(last.is_none(), "{case}");
                            assert_eq!(trace.len(), t.routes().len(), "{case}");
                            assert_eq!(first_wrong.map(|r| r.index), Some(m.index), "{case}");
                        }
                        RouteLookup::NoRoute => {
                            assert!(last.is_none() && first_wrong.is_none(), "{case}");
                            assert_eq!(trace.len(), t.routes().len(), "{case}");
                        }
                    }
                }
            }
        }
    }
}
