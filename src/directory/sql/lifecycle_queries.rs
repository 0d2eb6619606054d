//! The SQL of the partner lifecycle (orgs, invitations, grants, review decisions), portable
//! between SQLite and PostgreSQL like `queries.rs`.

/// An org with its seat count.
macro_rules! org_detail {
    () => {
        "SELECT o.id, o.name, o.org_type, o.status, o.max_users, o.max_grant_ttl, \
         o.contact_email, o.created_at, o.roles_restricted, \
         (SELECT COUNT(*) FROM users u WHERE u.org_id = o.id AND u.status <> 'disabled'), \
         o.mfa_required \
         FROM orgs o"
    };
}

pub const ORGS: &str = concat!(org_detail!(), " ORDER BY o.id");
pub const ORG_BY_ID: &str = concat!(org_detail!(), " WHERE o.id = $1");

pub const ORG_ROLES_ALL: &str = "SELECT org_id, role FROM org_roles";
pub const ORG_ROLES_OF: &str = "SELECT org_id, role FROM org_roles WHERE org_id = $1";

/// Lock one org row until the transaction ends (a no-op update, portable).
pub const LOCK_ORG: &str = "UPDATE orgs SET name = name WHERE id = $1 RETURNING status";

pub const INSERT_ORG: &str = "INSERT INTO orgs (id, name, org_type, status, max_users, \
     max_grant_ttl, contact_email, roles_restricted, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

pub const UPDATE_ORG: &str = "UPDATE orgs SET name = $2, max_users = $3, max_grant_ttl = $4, \
     roles_restricted = $5, mfa_required = $6 WHERE id = $1";

pub const CLEAR_ORG_ROLES: &str = "DELETE FROM org_roles WHERE org_id = $1";
pub const INSERT_ORG_ROLE: &str = "INSERT INTO org_roles (org_id, role) VALUES ($1, $2)";

pub const ORG_MAX_USERS: &str = "SELECT max_users FROM orgs WHERE id = $1";

/// Users of an org that take a seat (every status but `disabled`).
pub const SEATS_USED: &str =
    "SELECT COUNT(*) FROM users WHERE org_id = $1 AND status <> 'disabled'";

pub const USER_BY_EMAIL_SHORT: &str = "SELECT id, org_id, status FROM users WHERE email = $1";

pub const INSERT_INVITED_USER: &str = "INSERT INTO users \
     (id, email, org_id, status, failed_logins, created_at) VALUES ($1, $2, $3, 'invited', 0, $4)";

pub const REVOKE_OPEN_INVITATIONS: &str = "UPDATE invitations SET revoked_at = $2 \
     WHERE user_id = $1 AND used_at IS NULL AND revoked_at IS NULL";

pub const REVOKE_ORG_INVITATIONS: &str = "UPDATE invitations SET revoked_at = $2 \
     WHERE org_id = $1 AND used_at IS NULL AND revoked_at IS NULL";

pub const INSERT_INVITATION: &str = "INSERT INTO invitations \
     (id, token_hash, user_id, org_id, email, created_by, created_at, expires_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

/// An invitation with its org's name.
macro_rules! invitation {
    () => {
        "SELECT i.id, i.user_id, i.org_id, o.name, i.email, i.created_by, i.created_at, \
         i.expires_at, i.used_at, i.revoked_at FROM invitations i JOIN orgs o ON o.id = i.org_id"
    };
}

pub const INVITATION_BY_TOKEN: &str = concat!(invitation!(), " WHERE i.token_hash = $1");
pub const INVITATIONS_OF_ORG: &str = concat!(
    invitation!(),
    " WHERE i.org_id = $1 ORDER BY i.created_at, i.id"
);

/// Claim an open invitation (single use): `$2` is now.
pub const CLAIM_INVITATION: &str = "UPDATE invitations SET used_at = $2 \
     WHERE token_hash = $1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $2 \
     RETURNING user_id, org_id, email";

pub const ACTIVATE_INVITED_USER: &str = "UPDATE users SET status = 'active', \
     password_hash = $2, failed_logins = 0, locked_until = NULL \
     WHERE id = $1 AND status = 'invited' RETURNING id";

pub const DISABLE_ORG_USERS: &str = "UPDATE users SET status = 'disabled' \
     WHERE org_id = $1 AND status <> 'disabled' RETURNING id";

pub const GRANT_OF: &str =
    "SELECT level, expires_at FROM grants WHERE user_id = $1 AND account_id = $2";

pub const PUT_GRANT: &str = "INSERT INTO grants \
     (user_id, account_id, level, expires_at, created_at) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (user_id, account_id) DO UPDATE SET \
     level = excluded.level, expires_at = excluded.expires_at";

pub const DELETE_GRANT: &str = "DELETE FROM grants WHERE user_id = $1 AND account_id = $2 \
     RETURNING level, expires_at";

pub const DELETE_USER_GRANTS: &str =
    "DELETE FROM grants WHERE user_id = $1 RETURNING account_id, level, expires_at";

pub const DELETE_ORG_GRANTS: &str = "DELETE FROM grants \
     WHERE user_id IN (SELECT id FROM users WHERE org_id = $1) \
     RETURNING user_id, account_id, level, expires_at";

pub const DELETE_EXPIRED_GRANTS: &str = "DELETE FROM grants \
     WHERE expires_at IS NOT NULL AND expires_at <= $1 \
     RETURNING user_id, account_id, level, expires_at";

pub const USER_ORG: &str = "SELECT org_id FROM users WHERE id = $1";

pub const UPSERT_REVIEW_DECISION: &str = "INSERT INTO review_decisions \
     (user_id, decision, reviewer, note, ts) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (user_id) DO UPDATE SET decision = excluded.decision, \
     reviewer = excluded.reviewer, note = excluded.note, ts = excluded.ts";

pub const REVIEW_DECISIONS: &str =
    "SELECT user_id, decision, reviewer, note, ts FROM review_decisions";

pub const ACCOUNT_EXISTS: &str = "SELECT 1 FROM accounts WHERE id = $1";
pub const ROLE_EXISTS: &str = "SELECT 1 FROM roles WHERE name = $1";
