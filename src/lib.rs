//! partnergate: an access gateway for partner portals.
//!
//! The request path (docs/reference.md, Request path) is assembled in [`proxy`] from small stages:
//! [`normalize`] → authenticate → resolve identity → [`policy`] → rate limit → forward,
//! with [`accesslog`] and [`metrics`] off the hot path. [`app`] wires it all from a
//! validated [`config::Config`].

pub mod accesslog;
pub mod admin;
pub mod admission;
pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo_portal;
pub mod directory;
pub mod error;
pub mod jwt;
pub mod lifecycle;
pub mod mail;
pub mod metrics;
pub mod mfa;
pub mod normalize;
pub mod password;
pub mod policy;
pub mod portal;
pub mod proxy;
pub mod ratelimit;
pub mod request_id;
pub mod session;
pub mod sso;
pub mod telemetry;
pub mod tls;
pub mod usage;
pub mod wire;
