//! The SQL of the mail outbox and password resets (`mail_impl.rs`), shared by SQLite and
//! PostgreSQL.

pub const INSERT_MAIL: &str = "INSERT INTO mail_outbox \
     (id, kind, recipient, subject, body_text, body_html, created_at, next_attempt_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $7)";

/// The outer `next_attempt_at <= $1` is checked again on each row after a concurrent
/// claim committed, so a row is claimed by one worker only.
pub const CLAIM_MAIL: &str = "UPDATE mail_outbox SET next_attempt_at = $2 \
     WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= $1 AND id IN \
     (SELECT id FROM mail_outbox WHERE sent_at IS NULL AND failed_at IS NULL \
      AND next_attempt_at <= $1 ORDER BY created_at, id LIMIT $3) \
     RETURNING id, kind, recipient, subject, body_text, body_html, attempts";

pub const MAIL_SENT: &str = "UPDATE mail_outbox SET sent_at = $2, body_text = '', \
     body_html = '', last_error = NULL WHERE id = $1";

pub const MAIL_FAILED: &str = "UPDATE mail_outbox SET attempts = attempts + 1, \
     next_attempt_at = $2, last_error = $3, failed_at = $4 WHERE id = $1";

pub const OUTBOX_DEPTH: &str =
    "SELECT COUNT(*) FROM mail_outbox WHERE sent_at IS NULL AND failed_at IS NULL";

pub const PRUNE_MAIL: &str =
    "DELETE FROM mail_outbox WHERE (sent_at IS NOT NULL AND sent_at < $1) \
     OR (failed_at IS NOT NULL AND failed_at < $1)";

pub const PRUNE_RESETS: &str = "DELETE FROM password_resets WHERE expires_at < $1";

pub const OPEN_RESETS: &str =
    "SELECT COUNT(*) FROM password_resets WHERE user_id = $1 AND created_at >= $2";

pub const INSERT_RESET: &str = "INSERT INTO password_resets \
     (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)";

pub const RESET_USER: &str = "SELECT r.user_id FROM password_resets r \
     JOIN users u ON u.id = r.user_id \
     WHERE r.token_hash = $1 AND r.used_at IS NULL AND r.expires_at > $2";

/// Single use, atomically: one row updated means the token was still good.
pub const USE_RESET: &str = "UPDATE password_resets SET used_at = $2 \
     WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING user_id";

pub const SET_PASSWORD_UNLOCK: &str = "UPDATE users SET password_hash = $2, failed_logins = 0, \
     locked_until = NULL WHERE id = $1";

pub const DELETE_USER_SESSIONS: &str = "DELETE FROM sessions WHERE user_id = $1";

pub const USER_EMAIL_ORG: &str = "SELECT email, org_id FROM users WHERE id = $1";
