//! The audit record of a login attempt (every attempt is audited). It says
//! who (the user on success; `anonymous` with the email as typed otherwise), from where,
//! which request, and why it failed — never the password.

use crate::directory::audit::{
    AuditEntry, AuditOutcome, ACTION_LOGIN_FAILURE, ACTION_LOGIN_PASSWORD_OK, ACTION_LOGIN_SUCCESS,
    ACTOR_ANONYMOUS,
};
use crate::directory::Amr;
use crate::directory::UserRecord;

use super::attempt::{normalized_email, LoginAttempt, LoginResult};

/// The record of an attempt the login decision answered with `result`.
pub fn decided(
    attempt: &LoginAttempt,
    user: Option<&UserRecord>,
    result: LoginResult,
) -> AuditEntry {
    match result {
        LoginResult::Success => entry(attempt, user, AuditOutcome::Ok, None),
        LoginResult::SecondFactorRequired => {
            let mut e = entry(attempt, user, AuditOutcome::Ok, Some(result.as_str()));
            e.action = ACTION_LOGIN_PASSWORD_OK.to_string();
            e
        }
        other => entry(attempt, user, AuditOutcome::Denied, Some(other.as_str())),
    }
}

/// The record of a successful sign-in, saying how the user authenticated (`amr`).
pub fn succeeded(attempt: &LoginAttempt, user: &UserRecord, amr: Amr, via: &str) -> AuditEntry {
    let mut e = entry(attempt, Some(user), AuditOutcome::Ok, None);
    e.after = Some(serde_json::json!({ "amr": amr.names(), "second_factor": via }));
    e
}

/// The record of an attempt that ended before a decision: refused (`csrf`) or failed
/// (`login_busy`).
pub fn undecided(
    attempt: &LoginAttempt,
    user: Option<&UserRecord>,
    outcome: AuditOutcome,
    reason: &str,
) -> AuditEntry {
    entry(attempt, user, outcome, Some(reason))
}

fn entry(
    attempt: &LoginAttempt,
    user: Option<&UserRecord>,
    outcome: AuditOutcome,
    reason: Option<&str>,
) -> AuditEntry {
    let success = outcome == AuditOutcome::Ok;
    let (action, actor) = match user {
        Some(u) if success => (ACTION_LOGIN_SUCCESS, u.id.clone()),
        _ => (ACTION_LOGIN_FAILURE, ACTOR_ANONYMOUS.to_string()),
    };
    AuditEntry {
        actor_email: user
            .map(|u| u.email.clone())
            .or_else(|| normalized_email(&attempt.email)),
        ip: Some(attempt.client_ip.to_string()),
        request_id: Some(attempt.request_id.clone()).filter(|id| !id.is_empty()),
        target: user.map(|u| format!("user:{}", u.id)),
        org_id: user.map(|u| u.org_id.clone()),
        reason: reason.map(str::to_string),
        ..AuditEntry::new(actor, action, outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::UserStatus;

    fn attempt(email: &str) -> LoginAttempt {
        LoginAttempt {
            email: email.into(),
            password: "correct horse battery".into(),
            client_ip: "192.0.2.9".parse().expect("ip"),
            request_id: "req-1".into(),
        }
    }

    fn bob() -> UserRecord {
        UserRecord {
            id: "u-1".into(),
            email: "bob@acme.example".into(),
            org_id: "acme".into(),
            roles: vec![],
            status: UserStatus::Active,
            password_hash: Some("$argon2id$secret".into()),
            failed_logins: 0,
            locked_until: None,
            last_login_at: None,
            last_seen_at: None,
            created_at: 0,
        }
    }

    #[test]
    fn success_is_the_users_own_action() {
        let e = decided(
            &attempt(" Bob@Acme.example"),
            Some(&bob()),
            LoginResult::Success,
        );
        assert_eq!(
            (e.actor.as_str(), e.action.as_str()),
            ("u-1", "login.success")
        );
        assert_eq!(e.outcome, AuditOutcome::Ok);
        assert_eq!(e.reason, None);
        assert_eq!(e.target.as_deref(), Some("user:u-1"));
        assert_eq!(e.org_id.as_deref(), Some("acme"));
        assert_eq!(e.ip.as_deref(), Some("192.0.2.9"));
        assert_eq!(e.request_id.as_deref(), Some("req-1"));
    }

    #[test]
    fn failures_are_anonymous_with_the_reason() {
        let e = decided(
            &attempt("bob@acme.example"),
            Some(&bob()),
            LoginResult::Locked,
        );
        assert_eq!(
            (e.actor.as_str(), e.action.as_str()),
            ("anonymous", "login.failure")
        );
        assert_eq!(
            (e.outcome, e.reason.as_deref()),
            (AuditOutcome::Denied, Some("locked"))
        );
        assert_eq!(e.target.as_deref(), Some("user:u-1"));

        let e = decided(
            &attempt(" Who@Where.example "),
            None,
            LoginResult::UnknownUser,
        );
        assert_eq!(e.actor_email.as_deref(), Some("who@where.example"));
        assert_eq!((e.target, e.org_id), (None, None));
        assert_eq!(e.reason.as_deref(), Some("unknown_user"));

        let e = undecided(
            &attempt(&"x".repeat(300)),
            None,
            AuditOutcome::Failed,
            "login_busy",
        );
        assert_eq!(e.actor_email, None);
        assert_eq!(
            (e.outcome, e.reason.as_deref()),
            (AuditOutcome::Failed, Some("login_busy"))
        );
    }

    #[test]
    fn no_secret_is_recorded() {
        let e = decided(
            &attempt("bob@acme.example"),
            Some(&bob()),
            LoginResult::Success,
        );
        let text = serde_json::to_string(&e).expect("json");
        assert!(!text.contains("correct horse"), "{text}");
        assert!(!text.contains("argon2"), "{text}");
    }
}
