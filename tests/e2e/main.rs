//! End-to-end tests: the real binary, real listeners, the real demo portal upstream.

#[path = "../common/mod.rs"]
mod common;

mod audit;
mod bounds;
mod check;
mod console;
mod dataplane;
mod explain;
mod forward_auth;
mod identity;
mod identity_clock;
mod lifecycle;
mod lifecycle_ops;
mod mail;
mod mfa;
mod observability;
mod passkey;
mod policy;
mod ratelimit;
mod review;
mod revocation;
mod sso;
mod streams;
mod strictness;
mod tracing;
mod usage;
