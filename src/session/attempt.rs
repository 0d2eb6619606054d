//! A login attempt and its result: what the login form hands in, what the login decision
//! answers, and the email as the directory looks it up. The decision (`login`) and the
//! audit record of each attempt (`login_audit`) both build on these, so the audit record
//! needs nothing from the decision that writes it.

use std::net::IpAddr;

pub struct LoginAttempt {
    pub email: String,
    pub password: String,
    pub client_ip: IpAddr,
    /// The request's `X-Request-Id`, for the audit record.
    pub request_id: String,
}

/// The `result` label of `partnergate_logins_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginResult {
    Success,
    BadCredentials,
    Locked,
    Suspended,
    UnknownUser,
    /// The password was right; the second factor is asked next.
    SecondFactorRequired,
    /// A wrong, replayed or used second-factor code (or passkey).
    BadSecondFactor,
    /// The second-factor step came too late (or its cookie is unknown).
    ChallengeExpired,
}

impl LoginResult {
    pub const ALL: [LoginResult; 8] = [
        LoginResult::Success,
        LoginResult::BadCredentials,
        LoginResult::Locked,
        LoginResult::Suspended,
        LoginResult::UnknownUser,
        LoginResult::SecondFactorRequired,
        LoginResult::BadSecondFactor,
        LoginResult::ChallengeExpired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LoginResult::Success => "success",
            LoginResult::BadCredentials => "bad_credentials",
            LoginResult::Locked => "locked",
            LoginResult::Suspended => "suspended",
            LoginResult::UnknownUser => "unknown_user",
            LoginResult::SecondFactorRequired => "second_factor_required",
            LoginResult::BadSecondFactor => "bad_second_factor",
            LoginResult::ChallengeExpired => "challenge_expired",
        }
    }
}

/// The longest email the login form looks up (RFC 5321 path limit).
pub const MAX_EMAIL_LEN: usize = 254;

/// The email as the directory stores it, or `None` when it cannot name a user.
pub fn normalized_email(email: &str) -> Option<String> {
    let email = email.trim().to_ascii_lowercase();
    (!email.is_empty() && email.len() <= MAX_EMAIL_LEN).then_some(email)
}
