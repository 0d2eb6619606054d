//! The login decision: one generic answer for every failure, the same work whether or
//! not the user exists, lockouts per account (in the directory) and per client IP.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moka::sync::Cache;

use crate::config::LoginConfig;
use crate::directory::{
    Amr, AuditEntry, AuditOutcome, Identity, LoginChallenge, OrgStatus, StoreError, UserRecord,
    UserStatus,
};
use crate::mfa::{CodeCheck, SecondFactors, CHALLENGE_TTL};
use crate::password::{HashError, PasswordHasher};

use super::attempt::{normalized_email, LoginAttempt, LoginResult};
use super::login_audit;
use super::{hash_token, new_token, token_shape_ok, NewSession, Sessions};

pub struct LoginOutcome {
    pub result: LoginResult,
    /// The user's email and org when the email names a user.
    pub user: Option<String>,
    pub org: Option<String>,
    pub session: Option<NewSession>,
    /// [`LoginResult::SecondFactorRequired`]: the token of the sign-in waiting for the
    /// second factor (a cookie, like a session token).
    pub challenge: Option<String>,
    /// Signed in, but the org requires a second factor and the user has none: the only
    /// page the session may reach is enrolment.
    pub must_enrol: bool,
    /// Locks this attempt started: "account" and/or "ip".
    pub new_lockouts: Vec<&'static str>,
}

/// The second step of a sign-in: the challenge cookie and what the user proved with.
pub struct SecondStep {
    pub challenge: String,
    pub proof: Proof,
    pub client_ip: IpAddr,
    pub request_id: String,
}

/// What the second step was checked with.
pub enum Proof {
    /// A TOTP or recovery code as typed.
    Code(String),
    /// A passkey assertion the caller already verified against this factor, with the
    /// credential's updated state (`None`: it did not verify).
    Passkey(Option<(String, String)>),
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error(transparent)]
    Directory(#[from] StoreError),
    #[error("password hashing is saturated")]
    Busy,
}

impl From<HashError> for LoginError {
    fn from(_: HashError) -> Self {
        LoginError::Busy
    }
}

/// Failed logins per client IP, across accounts, in memory.
pub struct IpLockouts {
    states: Cache<IpAddr, Arc<Mutex<IpState>>>,
}

#[derive(Debug, Default)]
struct IpState {
    failures: u32,
    window_start: i64,
    locked_until: i64,
}

impl Default for IpLockouts {
    fn default() -> Self {
        IpLockouts {
            states: Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(24 * 3600))
                .build(),
        }
    }
}

impl IpLockouts {
    pub fn is_locked(&self, ip: IpAddr, now: i64) -> bool {
        self.states
            .get(&ip)
            .and_then(|s| s.lock().ok().map(|s| s.locked_until > now))
            .unwrap_or(false)
    }

    /// Count a failure; true when this one locks the IP.
    pub fn fail(&self, ip: IpAddr, now: i64, max: u32, lockout: Duration) -> bool {
        let state = self.states.get_with(ip, Default::default);
        let Ok(mut s) = state.lock() else {
            return false;
        };
        let window = lockout.as_secs() as i64;
        if now - s.window_start >= window {
            s.failures = 0;
            s.window_start = now;
        }
        s.failures += 1;
        if s.failures >= max && s.locked_until <= now {
            s.locked_until = now + window;
            s.failures = 0;
            return true;
        }
        false
    }
}

pub struct LoginService {
    sessions: Arc<Sessions>,
    hasher: Arc<PasswordHasher>,
    ip_locks: IpLockouts,
    factors: SecondFactors,
    /// With `[mail]`: a locked account is told by mail.
    mail: Option<crate::mail::Mail>,
}

impl LoginService {
    pub fn new(sessions: Arc<Sessions>, hasher: Arc<PasswordHasher>) -> Self {
        LoginService {
            factors: SecondFactors::new(sessions.directory().clone()),
            sessions,
            hasher,
            ip_locks: IpLockouts::default(),
            mail: None,
        }
    }

    /// Send "your account was locked" notices through `mail`.
    pub fn with_mail(mut self, mail: crate::mail::Mail) -> Self {
        self.mail = Some(mail);
        self
    }

    pub fn factors(&self) -> &SecondFactors {
        &self.factors
    }

    pub fn sessions(&self) -> &Arc<Sessions> {
        &self.sessions
    }

    pub fn hasher(&self) -> &Arc<PasswordHasher> {
        &self.hasher
    }

    /// Check a login; on success start a new session. Every attempt appends exactly one
    /// audit record: in the same transaction as the directory write it makes (a counted
    /// failure, a success), or on its own when it writes nothing else. Only an attempt
    /// that cannot reach the directory at all goes unrecorded (it fails).
    pub async fn attempt(
        &self,
        mut attempt: LoginAttempt,
        config: &LoginConfig,
        absolute: Duration,
    ) -> Result<LoginOutcome, LoginError> {
        let now = self.sessions.clock().now();
        let ip_locked = self.ip_locks.is_locked(attempt.client_ip, now);
        let (user, identity) = self.find_user(&attempt.email).await?;
        // Always verify (against a dummy hash for unknown users): equal work either way.
        let hash = user.as_ref().and_then(|u| u.password_hash.clone());
        let password = std::mem::take(&mut attempt.password);
        let password_ok = match self.hasher.verify(password, hash).await {
            Ok(ok) => ok,
            Err(e) => return Err(self.hash_failed(&attempt, user.as_ref(), e, now).await),
        };
        let mut result = decide(
            ip_locked,
            user.as_ref(),
            identity.as_ref(),
            password_ok,
            now,
        );
        let factors = identity.as_ref().map_or(0, |i| i.second_factors);
        if result == LoginResult::Success && factors > 0 {
            result = LoginResult::SecondFactorRequired;
        }
        let mut outcome = LoginOutcome {
            result,
            user: user.as_ref().map(|u| u.email.clone()),
            org: user.as_ref().map(|u| u.org_id.clone()),
            session: None,
            challenge: None,
            must_enrol: false,
            new_lockouts: Vec::new(),
        };
        let audit = login_audit::decided(&attempt, user.as_ref(), result);
        match (result, &user) {
            _ if !password_ok => {
                self.count_failure(&attempt, user.as_ref(), config, now, audit, &mut outcome)
                    .await?;
            }
            (LoginResult::Success, Some(u)) => {
                let audit = login_audit::succeeded(&attempt, u, Amr::PWD, "none");
                outcome.session = Some(self.succeed(u, audit, now, absolute, Amr::PWD).await?);
                outcome.must_enrol = identity.as_ref().is_some_and(|i| i.org.mfa_required);
            }
            (LoginResult::SecondFactorRequired, Some(u)) => {
                // The failure count is not reset yet: a right password alone must not
                // clear the count of wrong second factors.
                self.append_audit(audit, now).await?;
                outcome.challenge = Some(self.open_challenge(&u.id, now).await?);
            }
            _ => self.append_audit(audit, now).await?,
        }
        Ok(outcome)
    }

    async fn open_challenge(&self, user_id: &str, now: i64) -> Result<String, LoginError> {
        let token = new_token();
        let challenge = LoginChallenge {
            token_hash: hash_token(&token),
            user_id: user_id.to_string(),
            created_at: now,
            expires_at: now + CHALLENGE_TTL,
            state: None,
        };
        self.sessions
            .directory()
            .call(move |s| async move { s.insert_challenge(&challenge).await })
            .await?;
        Ok(token)
    }

    /// The sign-in waiting for its second factor, by its cookie value.
    pub async fn pending(&self, token: &str) -> Result<Option<LoginChallenge>, LoginError> {
        if !token_shape_ok(token) {
            return Ok(None);
        }
        let hash = hash_token(token);
        let now = self.sessions.clock().now();
        Ok(self
            .sessions
            .directory()
            .call(move |s| async move { s.challenge(&hash, now).await })
            .await?)
    }

    /// The second step of a sign-in: the code (or the verified passkey) of the user whose
    /// password was right. A wrong code counts like a wrong password (account and IP),
    /// answers with the same page, and is audited the same way; a right one starts the
    /// session with `amr` saying how.
    pub async fn second_factor(
        &self,
        step: SecondStep,
        config: &LoginConfig,
        absolute: Duration,
    ) -> Result<LoginOutcome, LoginError> {
        let now = self.sessions.clock().now();
        let mut outcome = LoginOutcome {
            result: LoginResult::ChallengeExpired,
            user: None,
            org: None,
            session: None,
            challenge: None,
            must_enrol: false,
            new_lockouts: Vec::new(),
        };
        let Some(challenge) = self.pending(&step.challenge).await? else {
            return Ok(outcome);
        };
        let directory = self.sessions.directory();
        let id = challenge.user_id.clone();
        let identity = directory
            .call(move |s| async move { s.identity(&id).await })
            .await?;
        let Some(identity) = identity else {
            return Ok(outcome);
        };
        let (user, identity) = self.find_user(&identity.email).await?;
        let Some(user) = user else {
            return Ok(outcome);
        };
        outcome.user = Some(user.email.clone());
        outcome.org = Some(user.org_id.clone());
        let attempt = LoginAttempt {
            email: user.email.clone(),
            password: String::new(),
            client_ip: step.client_ip,
            request_id: step.request_id,
        };
        let ip_locked = self.ip_locks.is_locked(attempt.client_ip, now);
        let (amr, via) = match step.proof {
            Proof::Code(code) => match self.factors.check_code(&user.id, &code, now).await? {
                CodeCheck::Totp { .. } => (Some(Amr::OTP), "totp"),
                CodeCheck::Recovery => (Some(Amr::OTP), "recovery_code"),
                CodeCheck::Refused => (None, "code"),
            },
            Proof::Passkey(Some((factor_id, credential))) => {
                directory
                    .call(move |s| async move { s.use_passkey(&factor_id, &credential, now).await })
                    .await?;
                (Some(Amr::HWK), "passkey")
            }
            Proof::Passkey(None) => (None, "passkey"),
        };
        let mut result = decide(
            ip_locked,
            Some(&user),
            identity.as_ref(),
            amr.is_some(),
            now,
        );
        if result == LoginResult::BadCredentials {
            result = LoginResult::BadSecondFactor;
        }
        outcome.result = result;
        let hash = challenge.token_hash.clone();
        match (result, amr) {
            (LoginResult::BadSecondFactor, _) => {
                let audit = login_audit::decided(&attempt, Some(&user), result);
                self.count_failure(&attempt, Some(&user), config, now, audit, &mut outcome)
                    .await?;
                if outcome.new_lockouts.contains(&"account") {
                    self.close_challenge(hash, now).await?;
                } else {
                    // Still waiting: the same challenge may be answered again.
                    outcome.challenge = Some(step.challenge);
                }
            }
            (LoginResult::Success, Some(method)) => {
                self.close_challenge(hash, now).await?;
                let amr = Amr::PWD.with(method);
                let audit = login_audit::succeeded(&attempt, &user, amr, via);
                outcome.session = Some(self.succeed(&user, audit, now, absolute, amr).await?);
            }
            _ => {
                self.close_challenge(hash, now).await?;
                let audit = login_audit::decided(&attempt, Some(&user), result);
                self.append_audit(audit, now).await?;
            }
        }
        Ok(outcome)
    }

    async fn close_challenge(&self, hash: String, now: i64) -> Result<(), LoginError> {
        self.sessions
            .directory()
            .call(move |s| async move { s.delete_challenge(&hash, now).await })
            .await?;
        Ok(())
    }

    /// Audit a login form refused before its credentials were looked at (`reason`, e.g.
    /// `csrf`). The password is dropped unread; nothing counts towards a lockout.
    pub async fn refuse(&self, attempt: LoginAttempt, reason: &str) -> Result<(), LoginError> {
        let now = self.sessions.clock().now();
        let entry = login_audit::undecided(&attempt, None, AuditOutcome::Denied, reason);
        self.append_audit(entry, now).await
    }

    async fn succeed(
        &self,
        user: &UserRecord,
        audit: AuditEntry,
        now: i64,
        absolute: Duration,
        amr: Amr,
    ) -> Result<NewSession, LoginError> {
        let id = user.id.clone();
        self.sessions
            .directory()
            .call(move |s| async move { s.record_login_success(&id, now, &audit).await })
            .await?;
        self.sessions.directory().invalidate_user(&user.id);
        Ok(self.sessions.create(&user.id, amr, absolute).await?)
    }

    /// The password could not be checked (hashing saturated, or a stored hash argon2
    /// cannot read): audited as a failed attempt, then answered with the error.
    async fn hash_failed(
        &self,
        attempt: &LoginAttempt,
        user: Option<&UserRecord>,
        error: HashError,
        now: i64,
    ) -> LoginError {
        let reason = match error {
            HashError::Busy => "login_busy",
            _ => "password_check_failed",
        };
        let entry = login_audit::undecided(attempt, user, AuditOutcome::Failed, reason);
        if let Err(e) = self.append_audit(entry, now).await {
            tracing::error!(request_id = %attempt.request_id, "login attempt not audited: {e}");
        }
        error.into()
    }

    async fn append_audit(&self, entry: AuditEntry, now: i64) -> Result<(), LoginError> {
        self.sessions
            .directory()
            .call(move |s| async move { s.append_audit(&entry, now).await })
            .await?;
        Ok(())
    }

    async fn find_user(
        &self,
        email: &str,
    ) -> Result<(Option<UserRecord>, Option<Identity>), LoginError> {
        let Some(email) = normalized_email(email) else {
            return Ok((None, None));
        };
        let directory = self.sessions.directory();
        let user = directory
            .call(move |s| async move { s.user_by_email(&email).await })
            .await?;
        let Some(user) = user else {
            return Ok((None, None));
        };
        let id = user.id.clone();
        let identity = directory
            .call(move |s| async move { s.identity(&id).await })
            .await?;
        Ok((Some(user), identity))
    }

    /// Count a failed password against the IP and, unless it is locked already, the
    /// account; `audit` is appended with the account's write, or alone when there is none.
    async fn count_failure(
        &self,
        attempt: &LoginAttempt,
        user: Option<&UserRecord>,
        config: &LoginConfig,
        now: i64,
        audit: AuditEntry,
        outcome: &mut LoginOutcome,
    ) -> Result<(), LoginError> {
        let lockout = config.lockout;
        if self
            .ip_locks
            .fail(attempt.client_ip, now, config.max_failures_per_ip, lockout)
        {
            outcome.new_lockouts.push("ip");
        }
        let user = user.filter(|u| u.locked_until.is_none_or(|t| t <= now));
        let Some(user) = user else {
            return self.append_audit(audit, now).await;
        };
        let id = user.id.clone();
        let max = config.max_failures;
        let until = now + lockout.as_secs() as i64;
        let notice = self.mail.as_ref().map(|m| {
            let when = crate::clock::rfc3339(until).unwrap_or_default();
            m.letters.account_locked(&user.email, &when)
        });
        let locked = self
            .sessions
            .directory()
            .call(move |s| async move {
                s.record_login_failure(&id, max, until, &audit, notice.as_ref(), now)
                    .await
            })
            .await?;
        if locked {
            outcome.new_lockouts.push("account");
            if let Some(mail) = &self.mail {
                mail.queued();
            }
        }
        Ok(())
    }
}

/// The result of a login attempt from what is known about it.
fn decide(
    ip_locked: bool,
    user: Option<&UserRecord>,
    identity: Option<&Identity>,
    password_ok: bool,
    now: i64,
) -> LoginResult {
    let Some(user) = user else {
        return if ip_locked {
            LoginResult::Locked
        } else {
            LoginResult::UnknownUser
        };
    };
    if ip_locked || user.locked_until.is_some_and(|t| t > now) {
        return LoginResult::Locked;
    }
    if !password_ok {
        return LoginResult::BadCredentials;
    }
    let org_active = identity.is_some_and(|i| i.org.status == OrgStatus::Active);
    if user.status != UserStatus::Active || !org_active {
        return LoginResult::Suspended;
    }
    LoginResult::Success
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(status: UserStatus, locked_until: Option<i64>) -> UserRecord {
        UserRecord {
            id: "u-1".into(),
            email: "a@x.example".into(),
            org_id: "acme".into(),
            roles: vec![],
            status,
            password_hash: None,
            failed_logins: 0,
            locked_until,
            last_login_at: None,
            last_seen_at: None,
            created_at: 0,
        }
    }

    fn identity(org: OrgStatus) -> Identity {
        Identity {
            user_id: "u-1".into(),
            email: "a@x.example".into(),
            status: UserStatus::Active,
            org: crate::directory::OrgRef {
                id: "acme".into(),
                name: "Acme".into(),
                org_type: "reseller".into(),
                status: org,
                mfa_required: false,
            },
            roles: vec![],
            permissions: vec![],
            grants: vec![],
            second_factors: 0,
        }
    }

    #[test]
    fn decisions() {
        use LoginResult::*;
        let active = user(UserStatus::Active, None);
        let locked = user(UserStatus::Active, Some(200));
        let suspended = user(UserStatus::Suspended, None);
        let ok_org = identity(OrgStatus::Active);
        let bad_org = identity(OrgStatus::Suspended);
        let cases = [
            (false, None, None, false, UnknownUser),
            (true, None, None, false, Locked),
            (false, Some(&active), Some(&ok_org), true, Success),
            (false, Some(&active), Some(&ok_org), false, BadCredentials),
            (true, Some(&active), Some(&ok_org), true, Locked),
            (false, Some(&locked), Some(&ok_org), true, Locked),
            (false, Some(&suspended), Some(&ok_org), true, Suspended),
            (
                false,
                Some(&suspended),
                Some(&ok_org),
                false,
                BadCredentials,
            ),
            (false, Some(&active), Some(&bad_org), true, Suspended),
        ];
        for (ip_locked, u, i, ok, want) in cases {
            assert_eq!(decide(ip_locked, u, i, ok, 100), want);
        }
        // A lock that has run out no longer counts.
        assert_eq!(
            decide(false, Some(&locked), Some(&ok_org), true, 300),
            Success
        );
    }

    #[test]
    fn ip_lock_after_max_failures_and_expiry() {
        let locks = IpLockouts::default();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let lockout = Duration::from_secs(900);
        assert!(!locks.fail(ip, 1000, 3, lockout));
        assert!(!locks.fail(ip, 1001, 3, lockout));
        assert!(locks.fail(ip, 1002, 3, lockout));
        assert!(locks.is_locked(ip, 1500));
        assert!(!locks.is_locked(ip, 1002 + 900));
        assert!(!locks.is_locked("192.0.2.8".parse().unwrap(), 1500));
    }
}
