-- The audit log (CONTRACT §7): every change and every login attempt, as a hash chain.
-- Portable between SQLite and PostgreSQL: TEXT and BIGINT only; `ts` is Unix seconds;
-- `before`/`after` are JSON text. Each record's `hash` covers its contents and
-- `prev_hash` (see src/directory/audit.rs for the exact encoding).

CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    ts BIGINT NOT NULL,
    actor TEXT NOT NULL,
    actor_email TEXT,
    ip TEXT,
    request_id TEXT,
    action TEXT NOT NULL,
    target TEXT,
    org_id TEXT,
    outcome TEXT NOT NULL,
    reason TEXT,
    before TEXT,
    after TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);

CREATE INDEX audit_log_ts ON audit_log (ts);
CREATE INDEX audit_log_actor ON audit_log (actor, seq);
CREATE INDEX audit_log_org_id ON audit_log (org_id, seq);
CREATE INDEX audit_log_action ON audit_log (action, seq);

-- The newest record's seq and hash. Appenders lock this one row (their UPDATE of it),
-- which serialises them; `audit verify` compares it with the end of the log, so deleting
-- the newest records is detected too.
CREATE TABLE audit_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);

INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
