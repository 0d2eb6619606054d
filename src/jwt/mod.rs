//! Bearer-token verification ([`BearerVerifier`]) for the `[[issuers]]` of the
//! configuration, and the signed identity assertion ([`AssertionSigner`],
//! `X-Partner-Assertion`) with its verifier for upstreams ([`verify_assertion`]).
//!
//! Keys come only from configuration (`jwks_file`, `jwks_url`, `hmac_secret_file`,
//! `[assertion] key_file`); nothing a token carries (`jku`, `x5u`, `jwk`) is ever used
//! to find a key, and every key is bound to the algorithms its type allows.

mod assertion;
mod bearer;
mod error;
mod issuer;
pub(crate) mod jwks;
pub(crate) mod remote;
pub(crate) mod token;

pub use assertion::{
    verify_assertion, AssertionClaims, AssertionSigner, Subject, ASSERTION_ISSUER,
};
pub use bearer::{bearer_token, BearerVerifier, VerifiedToken};
pub use error::BearerError;

#[cfg(test)]
mod tests;
