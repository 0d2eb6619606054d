-- Second factors: TOTP authenticators and passkeys, recovery codes, the sign-in step
-- between a right password and the second factor, how each session was authenticated,
-- and the owner-set MFA requirement of an org. Portable between SQLite and PostgreSQL:
-- TEXT and BIGINT only; timestamps are Unix seconds.

-- One row per authenticator. `secret`: for `totp` the shared secret (base32), for
-- `passkey` the registered credential (JSON). `last_step`: the last accepted TOTP time
-- step, so a code is accepted once (RFC 6238 §5.2).
CREATE TABLE factors (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    secret TEXT NOT NULL,
    last_step BIGINT,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);

CREATE INDEX factors_user_id ON factors (user_id);

-- Single-use recovery codes; only their SHA-256 is stored.
CREATE TABLE recovery_codes (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    used_at BIGINT,
    PRIMARY KEY (user_id, code_hash)
);

-- A sign-in whose password was right and whose second factor is still to come. The
-- browser holds the token (a cookie); only its SHA-256 is stored. `state`: a passkey
-- ceremony's server state while it runs.
CREATE TABLE login_challenges (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    state TEXT
);

CREATE INDEX login_challenges_expires_at ON login_challenges (expires_at);

-- How the session was authenticated (RFC 8176 method names, space-separated); the time
-- of that authentication is the session's `created_at`.
ALTER TABLE sessions ADD COLUMN amr TEXT NOT NULL DEFAULT 'pwd';

-- 1: every member must sign in with a second factor (set by an owner admin).
ALTER TABLE orgs ADD COLUMN mfa_required BIGINT NOT NULL DEFAULT 0;
