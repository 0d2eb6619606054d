//! The audit log: every change and every login attempt, appended as a hash
//! chain so that `partnergate audit verify` detects an edited, deleted or inserted record.
//!
//! # The chain
//!
//! Records are numbered `seq` = 1, 2, 3… without gaps. Each record stores `prev_hash`, the
//! `hash` of the record before it (64 zeros, [`ZERO_HASH`], for seq 1), and its own `hash`:
//! lower-case hex SHA-256 of these bytes, in this order:
//!
//! 1. the version tag `"partnergate-audit-v1"`, as a text field;
//! 2. `seq`, then `ts`: 8 bytes each, big-endian two's complement (`i64::to_be_bytes`);
//! 3. one text field each for `actor`, `actor_email`, `ip`, `request_id`, `action`,
//!    `target`, `org_id`, `outcome`, `reason`, `before`, `after` and `prev_hash`.
//!
//! A text field is `0x00` for NULL, else `0x01`, the UTF-8 length as 8 bytes big-endian,
//! then the UTF-8 bytes. So no two different records encode alike (`("ab", "c")` and
//! `("a", "bc")`, or NULL and `""`, differ). `outcome` is its stored word (`ok`, `denied`,
//! `failed`); `before` and `after` are the JSON text exactly as stored.
//!
//! The newest `(seq, hash)` is also kept in the one-row `audit_head` table, updated in the
//! same transaction as the insert: deleting the newest records leaves the head pointing
//! past the end of the log.
//!
//! What this does and does not prove: an edit, insertion or deletion made without
//! recomputing every later hash and the head is detected. Someone with write access to the
//! database who does recompute them (the algorithm is public and there is no secret key),
//! or who deletes the newest records and rewinds the head to match, is not: that needs a
//! keyed MAC over the chain or the head anchored outside the database.

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::error::{StoreError, StoreResult};
use super::model::Timestamp;

mod chain;

pub(crate) use chain::ChainCheck;

/// `prev_hash` of the first record.
pub const ZERO_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The actor of background work (sweeps, expiry).
pub const ACTOR_SYSTEM: &str = "system";
/// The actor of a request with no authenticated user (a failed login).
pub const ACTOR_ANONYMOUS: &str = "anonymous";

pub const ACTION_LOGIN_SUCCESS: &str = "login.success";
pub const ACTION_LOGIN_FAILURE: &str = "login.failure";
/// The password was right; the sign-in waits for the second factor.
pub const ACTION_LOGIN_PASSWORD_OK: &str = "login.password_ok";

const HASH_VERSION: &str = "partnergate-audit-v1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditOutcome {
    /// The action was done.
    Ok,
    /// Refused: bad credentials, no right to do it, out of bounds.
    Denied,
    /// Could not be done (an internal failure, e.g. password hashing saturated).
    Failed,
}

impl AuditOutcome {
    pub const ALL: [AuditOutcome; 3] =
        [AuditOutcome::Ok, AuditOutcome::Denied, AuditOutcome::Failed];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Ok => "ok",
            AuditOutcome::Denied => "denied",
            AuditOutcome::Failed => "failed",
        }
    }
}

/// What a caller records: who did what to what, from where, and how it ended. Never a
/// password, token or secret, in any field (`before`/`after` included).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// A user id, [`ACTOR_SYSTEM`] or [`ACTOR_ANONYMOUS`].
    pub actor: String,
    /// The actor's email; for an anonymous login attempt, the email that was typed.
    pub actor_email: Option<String>,
    pub ip: Option<String>,
    pub request_id: Option<String>,
    /// Dotted, object first: `login.success`, `user.suspend`, `org.suspend`, `grant.revoke`.
    pub action: String,
    /// `user:u-1`, `org:acme`, `grant:u-1/client-42`.
    pub target: Option<String>,
    /// The org the target belongs to (what an org's admins may list).
    pub org_id: Option<String>,
    pub outcome: AuditOutcome,
    /// Why, as a stable word: `bad_credentials`, `locked`, `not_delegable`…
    pub reason: Option<String>,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

impl AuditEntry {
    /// An entry with only the required fields; set the others with struct update syntax.
    pub fn new(actor: impl Into<String>, action: impl Into<String>, outcome: AuditOutcome) -> Self {
        AuditEntry {
            actor: actor.into(),
            actor_email: None,
            ip: None,
            request_id: None,
            action: action.into(),
            target: None,
            org_id: None,
            outcome,
            reason: None,
            before: None,
            after: None,
        }
    }
}

/// Who makes an admin change, from where and why: the part of its audit record the caller
/// knows. The store that makes the change fills in the action, target, org and the
/// before/after state, inside the change's own transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditActor {
    /// A user id or [`ACTOR_SYSTEM`].
    pub actor: String,
    pub actor_email: Option<String>,
    pub ip: Option<String>,
    pub request_id: Option<String>,
    pub reason: Option<String>,
}

impl AuditActor {
    pub fn new(actor: impl Into<String>) -> Self {
        AuditActor {
            actor: actor.into(),
            actor_email: None,
            ip: None,
            request_id: None,
            reason: None,
        }
    }

    /// Background work (sweeps, expiry).
    pub fn system() -> Self {
        Self::new(ACTOR_SYSTEM)
    }

    /// The record of a change this actor made.
    pub fn entry(
        &self,
        action: &str,
        target: String,
        org_id: Option<String>,
        before: serde_json::Value,
        after: serde_json::Value,
    ) -> AuditEntry {
        AuditEntry {
            actor_email: self.actor_email.clone(),
            ip: self.ip.clone(),
            request_id: self.request_id.clone(),
            target: Some(target),
            org_id,
            reason: self.reason.clone(),
            before: Some(before),
            after: Some(after),
            ..AuditEntry::new(self.actor.clone(), action, AuditOutcome::Ok)
        }
    }
}

/// A record of the log: the entry, where it sits in the chain and when it was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    pub seq: i64,
    /// Unix seconds.
    pub ts: Timestamp,
    #[serde(flatten)]
    pub entry: AuditEntry,
    pub prev_hash: String,
    pub hash: String,
}

/// Which records `audit_list` returns, in seq order. Every set field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// `ts >= since`.
    pub since: Option<Timestamp>,
    /// `ts < until`.
    pub until: Option<Timestamp>,
    pub actor: Option<String>,
    /// The actor's email (or, for a failed login, the email typed), case-insensitive.
    pub actor_email: Option<String>,
    pub org_id: Option<String>,
    /// `action` starts with this (`"login."`, `"grant."`); case-sensitive.
    pub action_prefix: Option<String>,
    /// Only records after this seq (paging: the last seq of the previous page).
    pub after_seq: Option<i64>,
    /// At most this many records: default [`AuditFilter::DEFAULT_LIMIT`], capped at
    /// [`AuditFilter::MAX_LIMIT`].
    pub limit: Option<u32>,
}

impl AuditFilter {
    pub const DEFAULT_LIMIT: u32 = 100;
    pub const MAX_LIMIT: u32 = 1000;

    pub fn effective_limit(&self) -> i64 {
        i64::from(
            self.limit
                .unwrap_or(Self::DEFAULT_LIMIT)
                .min(Self::MAX_LIMIT),
        )
    }
}

/// The result of walking the whole chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditVerification {
    /// Records in the log.
    pub records: u64,
    /// The seq the head names; `None` when the head row is gone.
    pub head_seq: Option<i64>,
    /// The first thing wrong, in seq order; `None` when the chain is intact.
    pub first_problem: Option<AuditProblem>,
}

impl AuditVerification {
    pub fn is_intact(&self) -> bool {
        self.first_problem.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditProblem {
    /// The record that is wrong (or, for a missing one, the seq that should be there).
    pub seq: i64,
    /// What is wrong, e.g. "hash does not match its contents (edited)".
    pub problem: String,
}

/// One `audit_log` row as stored: JSON as text, exactly the bytes that were hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AuditRow {
    pub seq: i64,
    pub ts: Timestamp,
    pub actor: String,
    pub actor_email: Option<String>,
    pub ip: Option<String>,
    pub request_id: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub org_id: Option<String>,
    pub outcome: String,
    pub reason: Option<String>,
    pub before: Option<String>,
    pub after: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditRow {
    /// The row for `entry` at `seq`, chained to `prev_hash`, with its hash computed.
    pub fn chained(seq: i64, ts: Timestamp, entry: &AuditEntry, prev_hash: String) -> Self {
        let json = |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string());
        let mut row = AuditRow {
            seq,
            ts,
            actor: entry.actor.clone(),
            actor_email: entry.actor_email.clone(),
            ip: entry.ip.clone(),
            request_id: entry.request_id.clone(),
            action: entry.action.clone(),
            target: entry.target.clone(),
            org_id: entry.org_id.clone(),
            outcome: entry.outcome.as_str().to_string(),
            reason: entry.reason.clone(),
            before: json(&entry.before),
            after: json(&entry.after),
            prev_hash,
            hash: String::new(),
        };
        row.hash = row.content_hash();
        row
    }

    /// The hash of everything but `hash` itself (encoding in the module docs).
    pub fn content_hash(&self) -> String {
        let mut h = Sha256::new();
        text(&mut h, Some(HASH_VERSION));
        h.update(self.seq.to_be_bytes());
        h.update(self.ts.to_be_bytes());
        for field in [
            Some(self.actor.as_str()),
            self.actor_email.as_deref(),
            self.ip.as_deref(),
            self.request_id.as_deref(),
            Some(self.action.as_str()),
            self.target.as_deref(),
            self.org_id.as_deref(),
            Some(self.outcome.as_str()),
            self.reason.as_deref(),
            self.before.as_deref(),
            self.after.as_deref(),
            Some(self.prev_hash.as_str()),
        ] {
            text(&mut h, field);
        }
        hex(&h.finalize())
    }

    /// The record as callers see it; a value the model cannot hold is a corrupt row.
    pub fn into_record(self) -> StoreResult<AuditRecord> {
        let corrupt = |what: &str| {
            StoreError::Unavailable(format!("corrupt row: audit seq {} {what}", self.seq))
        };
        let outcome = AuditOutcome::parse(&self.outcome).ok_or_else(|| corrupt("outcome"))?;
        let json = |text: &Option<String>, what: &str| {
            text.as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|_| corrupt(what))
        };
        let before = json(&self.before, "before")?;
        let after = json(&self.after, "after")?;
        Ok(AuditRecord {
            seq: self.seq,
            ts: self.ts,
            entry: AuditEntry {
                actor: self.actor,
                actor_email: self.actor_email,
                ip: self.ip,
                request_id: self.request_id,
                action: self.action,
                target: self.target,
                org_id: self.org_id,
                outcome,
                reason: self.reason,
                before,
                after,
            },
            prev_hash: self.prev_hash,
            hash: self.hash,
        })
    }
}

fn text(h: &mut Sha256, field: Option<&str>) {
    match field {
        None => h.update([0u8]),
        Some(s) => {
            h.update([1u8]);
            h.update((s.len() as u64).to_be_bytes());
            h.update(s.as_bytes());
        }
    }
}

/// Lower-case hex of `bytes` (hashes, trace and span ids).
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

#[cfg(test)]
mod tests;
