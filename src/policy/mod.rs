//! Route matching and authorisation: pure functions over the validated configuration,
//! no I/O (DESIGN "policy is a pure crate-within-the-crate").

pub mod decide;
pub mod route;

pub use decide::{decide, enforce, AuthStrength, Decision, DenyReason, Request, Rule, Verdict};
pub use route::{RouteLookup, RouteMatch, RouteTable};
