//! The SQL of partner SSO (`sso_impl.rs`), shared by SQLite and PostgreSQL.

pub const CONNECTION: &str = "SELECT org_id, issuer, client_id, client_secret, scopes, \
     email_claim, roles_claim, role_map, default_roles, jit, enforce, idp_mfa, mfa_acr_values, \
     userinfo, created_at, updated_at FROM sso_connections WHERE org_id = $1";

pub const CONNECTIONS: &str = "SELECT org_id, issuer, client_id, client_secret, scopes, \
     email_claim, roles_claim, role_map, default_roles, jit, enforce, idp_mfa, mfa_acr_values, \
     userinfo, created_at, updated_at FROM sso_connections ORDER BY org_id";

pub const UPSERT_CONNECTION: &str = "INSERT INTO sso_connections (org_id, issuer, client_id, \
     client_secret, scopes, email_claim, roles_claim, role_map, default_roles, jit, enforce, \
     idp_mfa, mfa_acr_values, userinfo, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15) \
     ON CONFLICT (org_id) DO UPDATE SET issuer = excluded.issuer, \
     client_id = excluded.client_id, client_secret = excluded.client_secret, \
     scopes = excluded.scopes, email_claim = excluded.email_claim, \
     roles_claim = excluded.roles_claim, role_map = excluded.role_map, \
     default_roles = excluded.default_roles, jit = excluded.jit, enforce = excluded.enforce, \
     idp_mfa = excluded.idp_mfa, mfa_acr_values = excluded.mfa_acr_values, \
     userinfo = excluded.userinfo, updated_at = excluded.updated_at";

pub const DELETE_CONNECTION: &str = "DELETE FROM sso_connections WHERE org_id = $1";

pub const ORG_EXISTS: &str = "SELECT 1 FROM orgs WHERE id = $1";

pub const ORG_DOMAINS: &str = "SELECT domain FROM org_domains WHERE org_id = $1 ORDER BY domain";

pub const DOMAIN_ORG: &str = "SELECT org_id FROM org_domains WHERE domain = $1";

pub const INSERT_DOMAIN: &str =
    "INSERT INTO org_domains (domain, org_id, created_at) VALUES ($1, $2, $3)";

pub const DELETE_DOMAIN: &str = "DELETE FROM org_domains WHERE org_id = $1 AND domain = $2";

pub const INSERT_FLOW: &str = "INSERT INTO sso_flows \
     (state_hash, org_id, nonce, verifier, rd, created_at, expires_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";

pub const DELETE_EXPIRED_FLOWS: &str = "DELETE FROM sso_flows WHERE expires_at <= $1";

pub const TAKE_FLOW: &str = "DELETE FROM sso_flows WHERE state_hash = $1 \
     RETURNING state_hash, org_id, nonce, verifier, rd, created_at, expires_at";

pub const LINK_BY_SUBJECT: &str =
    "SELECT user_id FROM sso_links WHERE org_id = $1 AND subject = $2";

pub const LINK_BY_SID: &str = "SELECT user_id FROM sso_links WHERE org_id = $1 AND last_sid = $2";

pub const LINK_OF_USER: &str = "SELECT org_id, subject FROM sso_links WHERE user_id = $1";

pub const INSERT_LINK: &str = "INSERT INTO sso_links \
     (org_id, subject, user_id, last_sid, created_at, last_login_at) \
     VALUES ($1, $2, $3, $4, $5, $5)";

pub const TOUCH_LINK: &str = "UPDATE sso_links SET last_sid = $3, last_login_at = $4 \
     WHERE org_id = $1 AND subject = $2";

pub const INSERT_ACTIVE_USER: &str = "INSERT INTO users \
     (id, email, org_id, status, failed_logins, created_at) VALUES ($1, $2, $3, 'active', 0, $4)";

pub const ACTIVATE_USER: &str = "UPDATE users SET status = 'active' WHERE id = $1";

pub const ROLE_DELEGABLE: &str = "SELECT delegable FROM roles WHERE name = $1";

pub const ORG_ROLES_RESTRICTED: &str = "SELECT roles_restricted FROM orgs WHERE id = $1";

pub const ORG_ALLOWS_ROLE: &str = "SELECT 1 FROM org_roles WHERE org_id = $1 AND role = $2";
