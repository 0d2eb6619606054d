//! Stages 2 and 3, authenticate and resolve: the one place where a session cookie or a
//! bearer token becomes a user ([`Principal`]) and the user an identity from the
//! directory cache ([`Caller`]). The proxy, the gateway's own pages and the admin API
//! all go through [`Authenticator`].

use std::future::Future;
use std::sync::Arc;

use http::HeaderMap;

use crate::config::{AuthMode, SessionConfig};
use crate::directory::{CachedIdentity, Identity, StoreError, Timestamp};
use crate::jwt::{bearer_token, BearerVerifier};
use crate::policy::{AuthStrength, DenyReason};
use crate::session::{cookie, LiveSession, SessionState, Sessions};

use super::rejection::{Reason, Rejection, SessionFailure, TokenProblem};

/// How a request proved who it is from.
#[derive(Debug, Clone)]
pub enum Via {
    /// A server-side session (the cookie).
    Session(Arc<LiveSession>),
    /// A bearer JWT of a configured issuer (its `Authorization` header is not forwarded).
    Bearer,
    /// `partnergate explain`: a credential of the user is assumed, none was checked.
    Assumed,
}

/// Who a request is from, before the directory is asked.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: String,
    pub via: Via,
    /// How and when the user authenticated.
    pub strength: AuthStrength,
}

/// An authenticated request's user, resolved through the directory cache.
#[derive(Debug, Clone)]
pub struct Caller {
    pub via: Via,
    pub entry: Arc<CachedIdentity>,
    pub strength: AuthStrength,
}

impl Caller {
    pub fn identity(&self) -> &Identity {
        &self.entry.identity
    }

    /// The session that authenticated the request, if it was a session.
    pub fn session(&self) -> Option<&Arc<LiveSession>> {
        match &self.via {
            Via::Session(live) => Some(live),
            _ => None,
        }
    }

    pub fn is_bearer(&self) -> bool {
        matches!(self.via, Via::Bearer)
    }
}

/// Why no identity came out of a request's credentials.
#[derive(Debug)]
pub enum AuthFailure {
    NoCredentials,
    Session(SessionFailure),
    Token(TokenProblem),
    /// The credential names a user the directory does not have.
    UnknownUser {
        bearer: bool,
    },
    /// The directory cannot answer and nothing is cached (fail closed).
    Unavailable(StoreError),
    /// A session of a user whose org requires a second factor, signed in without one:
    /// only the account pages (enrolment, step-up) accept it.
    MfaRequired {
        /// The user has a factor to step up with; otherwise they must enrol one.
        enrolled: bool,
    },
}

impl AuthFailure {
    pub fn reason(&self) -> Reason {
        match self {
            AuthFailure::NoCredentials => Reason::NoCredentials,
            AuthFailure::Session(s) => Reason::Session(*s),
            AuthFailure::Token(t) => Reason::Token(*t),
            AuthFailure::UnknownUser { .. } => Reason::UnknownUser,
            AuthFailure::Unavailable(_) => Reason::DirectoryUnavailable,
            AuthFailure::MfaRequired { .. } => Reason::Policy(DenyReason::MfaRequired),
        }
    }

    /// The answer to the request: 302 to the login page for a browser navigation
    /// without a usable session, 401 otherwise, 503 when the directory is down.
    pub fn rejection(&self, browser: bool, path: &str, query: Option<&str>) -> Rejection {
        match self {
            AuthFailure::Unavailable(e) => {
                tracing::error!("directory lookup failed: {e}");
                Rejection::unavailable(Reason::DirectoryUnavailable)
            }
            AuthFailure::Token(_) | AuthFailure::UnknownUser { bearer: true } => {
                Rejection::unauthenticated(self.reason(), true, browser, path, query)
            }
            AuthFailure::MfaRequired { enrolled } => {
                Rejection::step_up(DenyReason::MfaRequired, !enrolled, browser, path, query)
            }
            _ => Rejection::unauthenticated(self.reason(), false, browser, path, query),
        }
    }
}

impl From<StoreError> for AuthFailure {
    fn from(e: StoreError) -> Self {
        AuthFailure::Unavailable(e)
    }
}

/// Where the identity of a request comes from: the [`Authenticator`] on live traffic,
/// an assumed identity in `partnergate explain`.
pub trait Identify: Sync {
    /// Unix seconds the request is judged at (session and grant expiry).
    fn now(&self) -> Timestamp;

    /// The caller of a request on a route with `mode` (never [`AuthMode::None`]).
    fn identify(
        &self,
        headers: &HeaderMap,
        mode: AuthMode,
    ) -> impl Future<Output = Result<Caller, AuthFailure>> + Send;
}

/// The credentials a request carries for a route with `mode`: a bearer token first when
/// the route takes both and both are present.
pub enum Credentials<'a> {
    Bearer(&'a str),
    Session(&'a str),
    None,
}

pub fn credentials<'a>(
    headers: &'a HeaderMap,
    mode: AuthMode,
    cookie_name: &str,
) -> Credentials<'a> {
    if matches!(mode, AuthMode::Bearer | AuthMode::Any) {
        if let Some(token) = bearer_token(headers) {
            return Credentials::Bearer(token);
        }
    }
    if matches!(mode, AuthMode::Session | AuthMode::Any) {
        if let Some(token) = cookie::in_headers(headers, cookie_name) {
            return Credentials::Session(token);
        }
    }
    Credentials::None
}

/// Sessions, bearer tokens and the directory, as one request's configuration sees them.
#[derive(Clone, Copy)]
pub struct Authenticator<'a> {
    pub sessions: &'a Sessions,
    pub bearer: &'a BearerVerifier,
    pub session: &'a SessionConfig,
}

impl Authenticator<'_> {
    /// Authenticate: the user the credentials name.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        mode: AuthMode,
    ) -> Result<Principal, AuthFailure> {
        match credentials(headers, mode, &self.session.cookie_name) {
            Credentials::Bearer(token) => self.bearer_user(token).await,
            Credentials::Session(token) => {
                match self
                    .sessions
                    .resolve(token, self.session.idle_timeout)
                    .await?
                {
                    SessionState::Valid(live) => Ok(Principal {
                        user_id: live.user_id.clone(),
                        strength: AuthStrength {
                            amr: live.amr,
                            auth_time: Some(live.created_at),
                        },
                        via: Via::Session(live),
                    }),
                    SessionState::Unknown => Err(AuthFailure::Session(SessionFailure::Unknown)),
                    SessionState::Idle => Err(AuthFailure::Session(SessionFailure::Idle)),
                    SessionState::Expired => Err(AuthFailure::Session(SessionFailure::Expired)),
                }
            }
            Credentials::None => Err(AuthFailure::NoCredentials),
        }
    }

    async fn bearer_user(&self, token: &str) -> Result<Principal, AuthFailure> {
        let now = self.sessions.clock().now();
        let verified = self
            .bearer
            .verify(token, now)
            .map_err(|e| AuthFailure::Token(TokenProblem::from(&e)))?;
        let directory = self.sessions.directory();
        match directory.user_id_for_claim(&verified.user).await? {
            Some(user_id) => Ok(Principal {
                user_id,
                via: Via::Bearer,
                strength: AuthStrength {
                    amr: verified.amr,
                    auth_time: verified.auth_time,
                },
            }),
            None => Err(AuthFailure::UnknownUser { bearer: true }),
        }
    }

    /// Resolve: the user's identity from the directory cache. A suspended user or org
    /// still resolves (the policy refuses it with its own reason). A session without a
    /// second factor of an org that requires one is refused here, for every page behind
    /// the gateway, its own included ([`AuthFailure::MfaRequired`]); the account pages use
    /// [`Authenticator::resolve_any`].
    pub async fn resolve(&self, principal: Principal) -> Result<Caller, AuthFailure> {
        let caller = self.resolve_any(principal).await?;
        let identity = caller.identity();
        if identity.org.mfa_required
            && caller.session().is_some()
            && !caller.strength.amr.is_multi_factor()
        {
            return Err(AuthFailure::MfaRequired {
                enrolled: identity.second_factors > 0,
            });
        }
        Ok(caller)
    }

    /// [`Authenticator::resolve`] without the org's second-factor requirement: for the
    /// pages where a user enrols one.
    pub async fn resolve_any(&self, principal: Principal) -> Result<Caller, AuthFailure> {
        let directory = self.sessions.directory();
        match directory.identity(&principal.user_id).await? {
            Some(entry) => Ok(Caller {
                via: principal.via,
                entry,
                strength: principal.strength,
            }),
            None => Err(AuthFailure::UnknownUser {
                bearer: matches!(principal.via, Via::Bearer),
            }),
        }
    }
}

impl Identify for Authenticator<'_> {
    fn now(&self) -> Timestamp {
        self.sessions.clock().now()
    }

    async fn identify(&self, headers: &HeaderMap, mode: AuthMode) -> Result<Caller, AuthFailure> {
        let principal = self.authenticate(headers, mode).await?;
        self.resolve(principal).await
    }
}
