//! Unit tests of the admission stages and of [`admit`](super::admit), without a socket:
//! request heads come from `http::Request::builder`, configurations from
//! `Config::from_toml`, identities and limits from small in-test seams (like
//! `partnergate explain`'s), and the authenticator runs against a real SQLite directory.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod admit;
mod authn;
mod clean;
mod rejection;
mod route;

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use http::request::Parts;

use super::Rules;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimits;

/// The upstream every test configuration's routes point at.
const UPSTREAM: &str = r#"
[upstreams.portal]
addrs = ["127.0.0.1:9000"]
"#;

/// A validated configuration (panics with the problems otherwise).
fn config(text: &str) -> Config {
    Config::from_toml(Path::new("t.toml"), text)
        .unwrap_or_else(|e| panic!("{e}"))
        .config
}

/// The admission rules of `text`, with fresh limits and metrics.
fn rules(text: &str) -> Rules {
    let config = config(text);
    let limits = RateLimits::build(&config, None, None);
    Rules::new(Arc::new(config), limits, &Metrics::new())
}

/// A request head as pingora hands it over: method, target and header lines (a name may
/// repeat: each pair is its own field line).
fn head(method: &str, target: &str, headers: &[(&str, &str)]) -> Parts {
    let mut builder = http::Request::builder().method(method).uri(target);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).unwrap().into_parts().0
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}
