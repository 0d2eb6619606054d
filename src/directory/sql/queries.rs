//! The one copy of the directory's SQL, shared by SQLite and PostgreSQL: `$N` placeholders,
//! TEXT and BIGINT columns, `ON CONFLICT … DO UPDATE`. Ordering of names is done in Rust
//! (byte order), never by the database's collation.

pub const PING: &str = "SELECT 1";

pub const IDENTITY_USER: &str =
    "SELECT u.id, u.email, u.status, o.id, o.name, o.org_type, o.status, o.mfa_required, \
     (SELECT COUNT(*) FROM factors f WHERE f.user_id = u.id) \
     FROM users u JOIN orgs o ON o.id = u.org_id WHERE u.id = $1";

pub const USER_ROLES: &str = "SELECT role FROM user_roles WHERE user_id = $1";

pub const USER_PERMISSIONS: &str = "SELECT DISTINCT rp.permission FROM role_permissions rp \
     JOIN user_roles ur ON ur.role = rp.role WHERE ur.user_id = $1";

pub const USER_GRANTS: &str = "SELECT account_id, level, expires_at FROM grants WHERE user_id = $1";

pub const USER_BY_EMAIL: &str = "SELECT id, email, org_id, status, password_hash, failed_logins, \
     locked_until, last_login_at, last_seen_at, created_at FROM users WHERE email = $1";

/// The right-hand sides read the row before the update, so both columns see the old count.
pub const LOGIN_FAILURE: &str = "UPDATE users SET \
     failed_logins = CASE WHEN failed_logins + 1 >= $2 THEN 0 ELSE failed_logins + 1 END, \
     locked_until = CASE WHEN failed_logins + 1 >= $2 THEN $3 ELSE locked_until END \
     WHERE id = $1 RETURNING failed_logins";

pub const LOGIN_SUCCESS: &str = "UPDATE users SET failed_logins = 0, locked_until = NULL, \
     last_login_at = $2, last_seen_at = $2 WHERE id = $1";

pub const TOUCH_USER: &str = "UPDATE users SET last_seen_at = $2 \
     WHERE id = $1 AND (last_seen_at IS NULL OR last_seen_at < $2)";

pub const INSERT_SESSION: &str = "INSERT INTO sessions \
     (id_hash, user_id, created_at, last_seen_at, expires_at, amr) \
     VALUES ($1, $2, $3, $4, $5, $6)";

pub const SESSION: &str = "SELECT id_hash, user_id, created_at, last_seen_at, expires_at, amr \
     FROM sessions WHERE id_hash = $1";

pub const USER_SESSIONS: &str = "SELECT id_hash, user_id, created_at, last_seen_at, \
     expires_at, amr FROM sessions WHERE user_id = $1";

pub const DELETE_SESSION: &str = "DELETE FROM sessions WHERE id_hash = $1";

pub const DELETE_USER_SESSIONS: &str = "DELETE FROM sessions WHERE user_id = $1 RETURNING id_hash";

pub const TOUCH_SESSION: &str =
    "UPDATE sessions SET last_seen_at = $2 WHERE id_hash = $1 AND last_seen_at < $2";

pub const DELETE_EXPIRED_SESSIONS: &str =
    "DELETE FROM sessions WHERE last_seen_at < $1 OR expires_at <= $2";

pub const ORG_EXISTS: &str = "SELECT 1 FROM orgs WHERE id = $1";
pub const ROLE_EXISTS: &str = "SELECT 1 FROM roles WHERE name = $1";
pub const ACCOUNT_EXISTS: &str = "SELECT 1 FROM accounts WHERE id = $1";
pub const USER_EXISTS: &str = "SELECT 1 FROM users WHERE email = $1";

pub const UPSERT_ROLE: &str = "INSERT INTO roles (name, delegable) VALUES ($1, $2) \
     ON CONFLICT (name) DO UPDATE SET delegable = excluded.delegable";

pub const CLEAR_ROLE_PERMISSIONS: &str = "DELETE FROM role_permissions WHERE role = $1";

pub const INSERT_ROLE_PERMISSION: &str =
    "INSERT INTO role_permissions (role, permission) VALUES ($1, $2)";

pub const UPSERT_ORG: &str =
    "INSERT INTO orgs (id, name, org_type, status, max_users, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET name = excluded.name, \
     org_type = excluded.org_type, status = excluded.status, max_users = excluded.max_users";

pub const UPSERT_ACCOUNT: &str = "INSERT INTO accounts (id, name) VALUES ($1, $2) \
     ON CONFLICT (id) DO UPDATE SET name = excluded.name";

/// The id is only used for a new user: on conflict the stored id is kept and returned.
pub const UPSERT_USER: &str = "INSERT INTO users \
     (id, email, org_id, status, password_hash, failed_logins, created_at) \
     VALUES ($1, $2, $3, $4, $5, 0, $6) ON CONFLICT (email) DO UPDATE SET \
     org_id = excluded.org_id, status = excluded.status, \
     password_hash = COALESCE(excluded.password_hash, users.password_hash) RETURNING id";

pub const CLEAR_USER_ROLES: &str = "DELETE FROM user_roles WHERE user_id = $1";

pub const INSERT_USER_ROLE: &str = "INSERT INTO user_roles (user_id, role) VALUES ($1, $2)";

/// The `WHERE` also settles SQLite's `INSERT … SELECT … ON CONFLICT` parsing ambiguity.
pub const UPSERT_GRANT: &str = "INSERT INTO grants \
     (user_id, account_id, level, expires_at, created_at) \
     SELECT id, $2, $3, $4, $5 FROM users WHERE email = $1 \
     ON CONFLICT (user_id, account_id) DO UPDATE SET \
     level = excluded.level, expires_at = excluded.expires_at RETURNING user_id";

pub const EXPORT_ROLES: &str = "SELECT name, delegable FROM roles";
pub const EXPORT_ROLE_PERMISSIONS: &str = "SELECT role, permission FROM role_permissions";
pub const EXPORT_ORGS: &str = "SELECT id, name, org_type, status, max_users FROM orgs";
pub const EXPORT_USERS: &str = "SELECT id, email, org_id, status, password_hash FROM users";
pub const EXPORT_USER_ROLES: &str = "SELECT user_id, role FROM user_roles";
pub const EXPORT_ACCOUNTS: &str = "SELECT id, name FROM accounts";
pub const EXPORT_GRANTS: &str = "SELECT u.email, g.account_id, g.level, g.expires_at \
     FROM grants g JOIN users u ON u.id = g.user_id";

pub const USERS_BY_STATUS: &str = "SELECT status, COUNT(*) FROM users GROUP BY status";
pub const ORGS_BY_STATUS: &str = "SELECT status, COUNT(*) FROM orgs GROUP BY status";
pub const USERS_ACTIVE_SINCE: &str =
    "SELECT COUNT(*) FROM users WHERE last_login_at >= $1 OR last_seen_at >= $1";
pub const SESSIONS_ACTIVE: &str = "SELECT COUNT(*) FROM sessions WHERE expires_at > $1";

/// Claims the next seq: the row lock this UPDATE takes serialises appenders on PostgreSQL
/// until their transaction ends (SQLite write transactions are serialised already). Returns
/// the new seq and the hash of the record before it.
pub const AUDIT_CLAIM_SEQ: &str =
    "UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash";

pub const AUDIT_SET_HEAD_HASH: &str = "UPDATE audit_head SET hash = $2 WHERE id = 1 AND seq = $1";

pub const AUDIT_HEAD: &str = "SELECT seq, hash FROM audit_head WHERE id = 1";

pub const AUDIT_INSERT: &str = "INSERT INTO audit_log (seq, ts, actor, actor_email, ip, \
     request_id, action, target, org_id, outcome, reason, before, after, prev_hash, hash) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)";

/// One page of the chain for `audit verify` (columns in [`AUDIT_INSERT`] order).
pub const AUDIT_PAGE: &str = "SELECT seq, ts, actor, actor_email, ip, request_id, action, \
     target, org_id, outcome, reason, before, after, prev_hash, hash \
     FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2";

/// `audit_list`: each filter applies only when its parameter is not NULL. `until` is
/// exclusive; the action prefix is compared exactly (no LIKE wildcards; case-sensitive).
pub const AUDIT_LIST: &str = "SELECT seq, ts, actor, actor_email, ip, request_id, action, \
     target, org_id, outcome, reason, before, after, prev_hash, hash \
     FROM audit_log WHERE seq > $1 \
     AND ($2 IS NULL OR ts >= $2) AND ($3 IS NULL OR ts < $3) \
     AND ($4 IS NULL OR actor = $4) AND ($5 IS NULL OR org_id = $5) \
     AND ($6 IS NULL OR substr(action, 1, length($6)) = $6) \
     AND ($8 IS NULL OR lower(actor_email) = lower($8)) \
     ORDER BY seq LIMIT $7";

/// Claims `$1` seqs for directory changes and returns the last: the caller numbers its
/// changes `last - $1 + 1 ..= last`. The row lock serialises writers on PostgreSQL until
/// their transaction ends (as [`AUDIT_CLAIM_SEQ`] does for the audit chain).
pub const CHANGE_CLAIM_SEQS: &str =
    "UPDATE directory_change_head SET seq = seq + $1 WHERE id = 1 RETURNING seq";

pub const CHANGE_INSERT: &str =
    "INSERT INTO directory_changes (seq, ts, kind, id) VALUES ($1, $2, $3, $4)";

pub const CHANGES_SINCE: &str = "SELECT seq, ts, kind, id FROM directory_changes \
     WHERE seq > $1 ORDER BY seq LIMIT $2";

pub const CHANGE_LATEST: &str = "SELECT seq FROM directory_change_head WHERE id = 1";

pub const CHANGES_PRUNE: &str = "DELETE FROM directory_changes WHERE ts < $1";

/// The status before a change, with the row locked for the rest of the transaction (a
/// no-op update: portable, unlike `SELECT … FOR UPDATE`).
pub const LOCK_USER_STATUS: &str =
    "UPDATE users SET status = status WHERE id = $1 RETURNING status, org_id";

pub const SET_USER_STATUS: &str = "UPDATE users SET status = $2 WHERE id = $1";

pub const LOCK_ORG_STATUS: &str = "UPDATE orgs SET status = status WHERE id = $1 RETURNING status";

pub const SET_ORG_STATUS: &str = "UPDATE orgs SET status = $2 WHERE id = $1";

pub const DELETE_ORG_SESSIONS: &str = "DELETE FROM sessions \
     WHERE user_id IN (SELECT id FROM users WHERE org_id = $1) RETURNING user_id";

/// Sessions of users who may not act (not active, or in an org that is not active): an
/// import that suspends someone ends their sessions, as a suspension through the API does.
pub const DELETE_UNUSABLE_SESSIONS: &str = "DELETE FROM sessions WHERE user_id IN \
     (SELECT u.id FROM users u JOIN orgs o ON o.id = u.org_id \
      WHERE u.status <> 'active' OR o.status <> 'active') RETURNING user_id";

/// Every user with the org's type and status, for the access review.
pub const REVIEW_USERS: &str = "SELECT u.id, u.email, u.org_id, o.org_type, o.status, \
     u.status, u.last_login_at, u.last_seen_at, u.created_at \
     FROM users u JOIN orgs o ON o.id = u.org_id";

pub const REVIEW_GRANTS: &str = "SELECT user_id, account_id, level, expires_at FROM grants";

/// Roles holding the permission `$1`.
pub const ROLES_WITH_PERMISSION: &str =
    "SELECT DISTINCT role FROM role_permissions WHERE permission = $1";

/// Active users whose last login (or creation, when they never logged in) is before `$1`.
pub const INACTIVE_USERS: &str = "SELECT id FROM users \
     WHERE status = 'active' AND COALESCE(last_login_at, created_at) < $1";

/// Rows per `INSERT` of [`usage_upsert`]: 5 parameters each, far below either database's
/// limit on parameters per statement.
pub const USAGE_ROWS_PER_STATEMENT: usize = 100;

/// Adds `$5` (`$10`, …) to the stored count of each (day, org, user, route), creating the
/// row when missing; `rows` value tuples of 5 parameters. The keys of one statement must be
/// distinct (PostgreSQL refuses to update a row twice in one statement).
pub fn usage_upsert(rows: usize) -> String {
    let mut sql =
        String::from("INSERT INTO usage_daily (day, org_id, user_id, route, requests) VALUES ");
    for i in 0..rows {
        let n = i * 5;
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "(${}, ${}, ${}, ${}, ${})",
            n + 1,
            n + 2,
            n + 3,
            n + 4,
            n + 5
        ));
    }
    sql.push_str(
        " ON CONFLICT (day, org_id, user_id, route) \
         DO UPDATE SET requests = usage_daily.requests + excluded.requests",
    );
    sql
}

/// Requests per (org, user, route) over the days from `$1` on, optionally of one org (`$2`)
/// and one user id (`$3`), with the user's email when the user still exists. `SUM` of a
/// BIGINT is NUMERIC on PostgreSQL: cast back.
pub const USAGE_TOTALS: &str = "SELECT t.org_id, t.user_id, u.email, t.route, t.requests \
     FROM (SELECT org_id, user_id, route, CAST(SUM(requests) AS BIGINT) AS requests \
           FROM usage_daily WHERE day >= $1 \
           AND ($2 IS NULL OR org_id = $2) AND ($3 IS NULL OR user_id = $3) \
           GROUP BY org_id, user_id, route) t \
     LEFT JOIN users u ON u.id = t.user_id";

pub const USAGE_PRUNE: &str = "DELETE FROM usage_daily WHERE day < $1";
