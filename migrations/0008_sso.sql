-- Partner SSO: each org may sign in through its own OpenID Connect provider. Portable
-- between SQLite and PostgreSQL: TEXT and BIGINT only; timestamps are Unix seconds.

-- One connection per org. The client secret is never stored: `client_secret` names
-- where it is read from (`env:NAME` or `file:/path`). `scopes`, `default_roles` and
-- `mfa_acr_values` are space-separated; `role_map` is a JSON object (claim value -> role).
CREATE TABLE sso_connections (
    org_id TEXT PRIMARY KEY REFERENCES orgs (id) ON DELETE CASCADE,
    issuer TEXT NOT NULL,
    client_id TEXT NOT NULL,
    client_secret TEXT NOT NULL,
    scopes TEXT NOT NULL,
    email_claim TEXT NOT NULL,
    roles_claim TEXT,
    role_map TEXT NOT NULL,
    default_roles TEXT NOT NULL,
    -- 1: an unknown user of the org's domains is created at their first sign-in.
    jit BIGINT NOT NULL,
    -- 1: password sign-in and password reset are refused for the org's domains.
    enforce BIGINT NOT NULL,
    -- 1: the IdP's amr/acr count as a second factor (for require_mfa and the org's
    -- own MFA requirement).
    idp_mfa BIGINT NOT NULL,
    mfa_acr_values TEXT NOT NULL,
    userinfo BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Email domains for home-realm discovery; a domain belongs to one org at most.
CREATE TABLE org_domains (
    domain TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL
);

CREATE INDEX org_domains_org_id ON org_domains (org_id);

-- A user as their org's IdP knows them (`sub`), and the IdP session (`sid`) of their
-- last sign-in, for back-channel logout.
CREATE TABLE sso_links (
    org_id TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    subject TEXT NOT NULL,
    user_id TEXT NOT NULL UNIQUE REFERENCES users (id) ON DELETE CASCADE,
    last_sid TEXT,
    created_at BIGINT NOT NULL,
    last_login_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, subject)
);

CREATE INDEX sso_links_sid ON sso_links (org_id, last_sid);

-- A sign-in sent to an IdP and not back yet. The browser holds `state` (a cookie and
-- the query parameter); only its SHA-256 is stored, with the nonce and the PKCE verifier.
CREATE TABLE sso_flows (
    state_hash TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    nonce TEXT NOT NULL,
    verifier TEXT NOT NULL,
    rd TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE INDEX sso_flows_expires_at ON sso_flows (expires_at);
