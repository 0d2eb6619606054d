//! Partner SSO as the directory keeps it: each org's OpenID Connect connection, the email
//! domains that route to it, the link between a user and their IdP subject, and the
//! sign-ins on their way through an IdP. The protocol (discovery, tokens) is the
//! top-level `sso` module; the store makes each change, with its audit record and
//! directory change, in one transaction.

use async_trait::async_trait;

use super::audit::{AuditActor, AuditEntry};
use super::error::StoreResult;
use super::model::Timestamp;

/// One org's OpenID Connect connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoConnection {
    pub org_id: String,
    /// Exactly as the provider's discovery document and ID tokens name it.
    pub issuer: String,
    pub client_id: String,
    /// Where the client secret is read: `env:NAME` or `file:/path` (never the secret).
    pub client_secret: String,
    /// Always starts with `openid`.
    pub scopes: Vec<String>,
    /// The claim holding the user's email (`email`).
    pub email_claim: String,
    /// The claim holding group or role names (a string or an array of strings); `None`:
    /// roles come only from `default_roles`, at the first sign-in.
    pub roles_claim: Option<String>,
    /// Claim value → role, in order.
    pub role_map: Vec<(String, String)>,
    /// Roles every provisioned user gets.
    pub default_roles: Vec<String>,
    /// Create unknown users of the org's domains at their first sign-in.
    pub jit: bool,
    /// Refuse password sign-in and password reset for the org's domains.
    pub enforce: bool,
    /// The IdP's `amr` (`mfa`, `otp`, `hwk`, …) or one of `mfa_acr_values` counts as a
    /// second factor.
    pub idp_mfa: bool,
    pub mfa_acr_values: Vec<String>,
    /// Read the userinfo endpoint too (its claims complete the ID token's).
    pub userinfo: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl SsoConnection {
    /// As the admin API shows it: where the secret comes from, never the secret.
    pub fn to_json(&self) -> serde_json::Value {
        let role_map: serde_json::Map<String, serde_json::Value> = self
            .role_map
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        serde_json::json!({
            "org": self.org_id,
            "issuer": self.issuer,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "scopes": self.scopes,
            "email_claim": self.email_claim,
            "roles_claim": self.roles_claim,
            "role_map": role_map,
            "default_roles": self.default_roles,
            "jit": self.jit,
            "enforce": self.enforce,
            "idp_mfa": self.idp_mfa,
            "mfa_acr_values": self.mfa_acr_values,
            "userinfo": self.userinfo,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        })
    }
}

/// A sign-in sent to an IdP: what the callback checks the answer against.
#[derive(Clone, PartialEq, Eq)]
pub struct SsoFlow {
    /// SHA-256 (hex) of `state`.
    pub state_hash: String,
    pub org_id: String,
    pub nonce: String,
    /// The PKCE code verifier.
    pub verifier: String,
    /// Where to go after the sign-in (already checked to be a local path).
    pub rd: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

impl std::fmt::Debug for SsoFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsoFlow")
            .field("org_id", &self.org_id)
            .field("rd", &self.rd)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A verified SSO sign-in to apply: who the IdP says the user is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoSignIn {
    pub org_id: String,
    pub subject: String,
    /// Lower-cased; its domain is one of the org's.
    pub email: String,
    /// The IdP session, for back-channel logout.
    pub sid: Option<String>,
    /// `Some`: the roles the connection's mapping gives (replacing the user's roles);
    /// `None`: roles stay as they are (`default_roles` only for a new user).
    pub roles: Option<Vec<String>>,
    pub default_roles: Vec<String>,
    pub jit: bool,
    /// Who and where, for the audit records (ip, request id).
    pub actor: AuditActor,
}

/// What an SSO sign-in did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoSignedIn {
    pub user_id: String,
    /// The user was created by this sign-in (just-in-time).
    pub provisioned: bool,
    /// Roles the mapping or the defaults named that the org's bounds refused (not
    /// delegable, not allowed in the org, or unknown).
    pub refused_roles: Vec<String>,
    pub roles: Vec<String>,
}

#[async_trait]
pub trait SsoStore {
    async fn sso_connection(&self, org_id: &str) -> StoreResult<Option<SsoConnection>>;

    /// Every connection, by org id.
    async fn sso_connections(&self) -> StoreResult<Vec<SsoConnection>>;

    /// Create or replace an org's connection (`sso.connection.put`, before/after without
    /// any secret). [`super::StoreError::NotFound`] for an unknown org.
    async fn put_sso_connection(
        &self,
        connection: &SsoConnection,
        actor: &AuditActor,
        now: Timestamp,
    ) -> StoreResult<Option<SsoConnection>>;

    /// Remove an org's connection (`sso.connection.delete`); false when it had none.
    async fn delete_sso_connection(
        &self,
        org_id: &str,
        actor: &AuditActor,
        now: Timestamp,
    ) -> StoreResult<bool>;

    /// The org's email domains, sorted.
    async fn org_domains(&self, org_id: &str) -> StoreResult<Vec<String>>;

    /// The org a (lower-cased) email domain belongs to.
    async fn domain_org(&self, domain: &str) -> StoreResult<Option<String>>;

    /// Attach a domain to an org (`sso.domain.add`). [`super::StoreError::Conflict`] when
    /// another org has it; `Ok(false)` when this org has it already (nothing written).
    async fn add_org_domain(
        &self,
        org_id: &str,
        domain: &str,
        actor: &AuditActor,
        now: Timestamp,
    ) -> StoreResult<bool>;

    /// Detach a domain (`sso.domain.remove`); false when the org did not have it.
    async fn remove_org_domain(
        &self,
        org_id: &str,
        domain: &str,
        actor: &AuditActor,
        now: Timestamp,
    ) -> StoreResult<bool>;

    /// Remember a sign-in sent to an IdP (flows past expiry are deleted on the way).
    async fn insert_sso_flow(&self, flow: &SsoFlow, now: Timestamp) -> StoreResult<()>;

    /// Take (delete and return) the flow of a `state`, if it exists and has not expired:
    /// each flow is answered once.
    async fn take_sso_flow(&self, state_hash: &str, now: Timestamp)
        -> StoreResult<Option<SsoFlow>>;

    /// Apply a verified sign-in, in one transaction: find the user by their link (org,
    /// subject), else by email (and link them), else create them (`jit`, within the
    /// seat cap, `sso.provision`); activate an invited user; replace the roles when
    /// `roles` is `Some` (each checked inside the transaction against the org's bounds:
    /// the role exists, is delegable, and the org allows it; the others are dropped and
    /// reported); record the login (`login.success`, method `sso`) and the directory
    /// change. [`super::StoreError::Refused`]: `org_inactive`, `user_inactive`,
    /// `other_org` (the email or subject belongs to a user of another org),
    /// `unknown_user` (no such user and no `jit`), `seat_cap`.
    async fn sso_sign_in(
        &self,
        sign_in: &SsoSignIn,
        audit_after: serde_json::Value,
        now: Timestamp,
    ) -> StoreResult<SsoSignedIn>;

    /// The user an IdP's back-channel logout names: by subject, else by the `sid` of
    /// their last sign-in.
    async fn sso_user(
        &self,
        org_id: &str,
        subject: Option<&str>,
        sid: Option<&str>,
    ) -> StoreResult<Option<String>>;

    /// Append an SSO audit record that changes nothing else (a refusal).
    async fn sso_audit(&self, entry: &AuditEntry, now: Timestamp) -> StoreResult<()>;
}
