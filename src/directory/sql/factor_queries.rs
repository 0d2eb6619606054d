//! The SQL of second factors (`factors_impl.rs`), shared by SQLite and PostgreSQL.

pub const FACTORS: &str = "SELECT id, user_id, kind, name, secret, last_step, created_at, \
     last_used_at FROM factors WHERE user_id = $1 ORDER BY created_at, id";

pub const INSERT_FACTOR: &str = "INSERT INTO factors \
     (id, user_id, kind, name, secret, last_step, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";

pub const DELETE_FACTOR: &str = "DELETE FROM factors WHERE user_id = $1 AND id = $2";

pub const DELETE_USER_FACTORS: &str = "DELETE FROM factors WHERE user_id = $1";

pub const DELETE_USER_SESSIONS: &str = "DELETE FROM sessions WHERE user_id = $1";

pub const COUNT_FACTORS: &str = "SELECT COUNT(*) FROM factors WHERE user_id = $1";

/// Accepts a step only if it is later than every step accepted before: one row updated
/// means the code was fresh.
pub const USE_TOTP_STEP: &str = "UPDATE factors SET last_step = $2, last_used_at = $3 \
     WHERE id = $1 AND kind = 'totp' AND (last_step IS NULL OR last_step < $2)";

pub const USE_PASSKEY: &str = "UPDATE factors SET secret = $2, last_used_at = $3 \
     WHERE id = $1 AND kind = 'passkey'";

pub const DELETE_RECOVERY_CODES: &str = "DELETE FROM recovery_codes WHERE user_id = $1";

pub const INSERT_RECOVERY_CODE: &str =
    "INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)";

pub const USE_RECOVERY_CODE: &str = "UPDATE recovery_codes SET used_at = $3 \
     WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL";

pub const COUNT_RECOVERY_CODES: &str =
    "SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL";

pub const SET_PASSWORD: &str = "UPDATE users SET password_hash = $2, failed_logins = 0, \
     locked_until = NULL WHERE id = $1";

pub const DELETE_OTHER_SESSIONS: &str =
    "DELETE FROM sessions WHERE user_id = $1 AND id_hash <> $2 RETURNING id_hash";

pub const INSERT_CHALLENGE: &str = "INSERT INTO login_challenges \
     (token_hash, user_id, created_at, expires_at, state) VALUES ($1, $2, $3, $4, $5)";

pub const CHALLENGE: &str = "SELECT token_hash, user_id, created_at, expires_at, state \
     FROM login_challenges WHERE token_hash = $1 AND expires_at > $2";

pub const SET_CHALLENGE_STATE: &str =
    "UPDATE login_challenges SET state = $2 WHERE token_hash = $1";

pub const DELETE_CHALLENGE: &str =
    "DELETE FROM login_challenges WHERE token_hash = $1 OR expires_at <= $2";
