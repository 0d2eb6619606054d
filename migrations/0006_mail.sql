-- Mail that is never lost: an outbox written in the same transaction as the change that
-- causes the mail, sent by a background worker with retries; and self-service password
-- reset tokens. Portable between SQLite and PostgreSQL: TEXT and BIGINT only; timestamps
-- are Unix seconds.

-- `next_attempt_at` is also the claim: a worker moves it forward before sending, so two
-- instances never send the same row at once. The bodies (which may hold a single-use
-- link) are emptied once the mail is sent.
CREATE TABLE mail_outbox (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    body_text TEXT NOT NULL,
    body_html TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    sent_at BIGINT,
    failed_at BIGINT,
    last_error TEXT
);

CREATE INDEX mail_outbox_due ON mail_outbox (sent_at, failed_at, next_attempt_at);

-- A password reset link; only the SHA-256 of its token is stored. Single use.
CREATE TABLE password_resets (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);

CREATE INDEX password_resets_user_id ON password_resets (user_id);
