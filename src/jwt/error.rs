//! Why a bearer token was refused. Every variant is a 401 for the client; the
//! [`BearerError::reason`] goes to the access log, the detail only to debug logs.

use jsonwebtoken::errors::ErrorKind;

use super::token::MAX_TOKEN_BYTES;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    #[error("token larger than {MAX_TOKEN_BYTES} bytes")]
    TokenTooLarge,
    #[error("not a well-formed signed JWT")]
    MalformedToken,
    #[error("no configured issuer has this iss")]
    UnknownIssuer,
    #[error("algorithm not allowed for this issuer")]
    AlgorithmNotAllowed,
    #[error("the issuer's keys have not been fetched yet")]
    KeysUnavailable,
    #[error("no key of this issuer matches the token's kid and alg")]
    UnknownKey,
    #[error("signature does not verify")]
    BadSignature,
    #[error("token expired")]
    TokenExpired,
    #[error("token not valid yet (nbf)")]
    TokenNotYetValid,
    #[error("iss does not match the issuer")]
    WrongIssuer,
    #[error("aud names none of the issuer's audiences")]
    WrongAudience,
    #[error("claim {0} missing or empty")]
    MissingClaim(String),
    #[error("claim {0} has the wrong type")]
    InvalidClaim(String),
}

impl BearerError {
    /// Short snake_case reason for the access log and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            BearerError::TokenTooLarge => "token_too_large",
            BearerError::MalformedToken => "malformed_token",
            BearerError::UnknownIssuer => "unknown_issuer",
            BearerError::AlgorithmNotAllowed => "algorithm_not_allowed",
            BearerError::KeysUnavailable => "issuer_keys_unavailable",
            BearerError::UnknownKey => "unknown_key",
            BearerError::BadSignature => "bad_signature",
            BearerError::TokenExpired => "token_expired",
            BearerError::TokenNotYetValid => "token_not_yet_valid",
            BearerError::WrongIssuer => "wrong_issuer",
            BearerError::WrongAudience => "wrong_audience",
            BearerError::MissingClaim(_) => "missing_claim",
            BearerError::InvalidClaim(_) => "invalid_claim",
        }
    }

    /// Always 401: the client's credentials are not acceptable.
    pub fn status(&self) -> http::StatusCode {
        http::StatusCode::UNAUTHORIZED
    }
}

impl From<jsonwebtoken::errors::Error> for BearerError {
    fn from(error: jsonwebtoken::errors::Error) -> Self {
        match error.kind() {
            ErrorKind::InvalidSignature
            | ErrorKind::InvalidEcdsaKey
            | ErrorKind::InvalidEddsaKey
            | ErrorKind::InvalidRsaKey(_)
            | ErrorKind::InvalidKeyFormat => BearerError::BadSignature,
            ErrorKind::InvalidAlgorithm
            | ErrorKind::InvalidAlgorithmName
            | ErrorKind::MissingAlgorithm => BearerError::AlgorithmNotAllowed,
            ErrorKind::ExpiredSignature => BearerError::TokenExpired,
            ErrorKind::ImmatureSignature => BearerError::TokenNotYetValid,
            ErrorKind::InvalidIssuer => BearerError::WrongIssuer,
            ErrorKind::InvalidAudience => BearerError::WrongAudience,
            ErrorKind::MissingRequiredClaim(claim) => BearerError::MissingClaim(claim.clone()),
            ErrorKind::InvalidClaimFormat(claim) => BearerError::InvalidClaim(claim.clone()),
            _ => BearerError::MalformedToken,
        }
    }
}
