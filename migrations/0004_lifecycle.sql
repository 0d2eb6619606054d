-- The partner lifecycle (CONTRACT §7, issue 6): registration requests, the roles an org
-- may hand out, invitations and the reviewer's last decision per user. Portable between
-- SQLite and PostgreSQL: TEXT and BIGINT only; timestamps are Unix seconds.

-- A registration request is an org in status `pending` with the contact who asked.
ALTER TABLE orgs ADD COLUMN contact_email TEXT;
-- Longest client-account grant (seconds) inside this org; NULL = only the global
-- `lifecycle.max_grant_ttl` applies (and grants without expiry are allowed).
ALTER TABLE orgs ADD COLUMN max_grant_ttl BIGINT;
-- 1: only the roles in `org_roles` may be handed out in this org; 0: any role.
ALTER TABLE orgs ADD COLUMN roles_restricted BIGINT NOT NULL DEFAULT 0;

CREATE TABLE org_roles (
    org_id TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    role TEXT NOT NULL REFERENCES roles (name) ON DELETE CASCADE,
    PRIMARY KEY (org_id, role)
);

-- An invitation creates the user (status `invited`, with its roles) at once, so the seat
-- is taken; accepting sets the password and activates the user. Only the SHA-256 of the
-- token is stored. `used_at` set = accepted; `revoked_at` set = replaced or withdrawn.
CREATE TABLE invitations (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    org_id TEXT NOT NULL REFERENCES orgs (id),
    email TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    revoked_at BIGINT
);

CREATE INDEX invitations_org_id ON invitations (org_id);
CREATE INDEX invitations_user_id ON invitations (user_id);

-- The last access-review decision per user (the history is in the audit log).
CREATE TABLE review_decisions (
    user_id TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    decision TEXT NOT NULL,
    reviewer TEXT NOT NULL,
    note TEXT,
    ts BIGINT NOT NULL
);
