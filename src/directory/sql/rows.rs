//! Turning stored column values into model values. A value the model cannot hold (an
//! unknown status, a negative count) is a corrupt row: an error, never a panic.

use std::collections::HashMap;

use super::super::model::{AccountLevel, OrgStatus, Timestamp, UserStatus};
use super::super::store::{StoreError, StoreResult};

fn corrupt(what: &str, value: impl std::fmt::Debug) -> StoreError {
    StoreError::Unavailable(format!("corrupt row: {what} {value:?}"))
}

pub fn user_status(s: &str) -> StoreResult<UserStatus> {
    UserStatus::parse(s).ok_or_else(|| corrupt("user status", s))
}

pub fn org_status(s: &str) -> StoreResult<OrgStatus> {
    OrgStatus::parse(s).ok_or_else(|| corrupt("org status", s))
}

pub fn account_level(s: &str) -> StoreResult<AccountLevel> {
    AccountLevel::parse(s).ok_or_else(|| corrupt("grant level", s))
}

pub fn count_u32(what: &str, n: i64) -> StoreResult<u32> {
    u32::try_from(n).map_err(|_| corrupt(what, n))
}

/// RFC 3339 in UTC (`2026-12-31T00:00:00Z`), the import format of `expires`.
pub fn format_expires(ts: Timestamp) -> StoreResult<String> {
    crate::clock::rfc3339(ts).ok_or_else(|| corrupt("grant expiry", ts))
}

/// A new stable user id: `u-` and 16 random lower-hex digits.
pub fn new_user_id() -> String {
    format!("u-{:016x}", rand::random::<u64>())
}

/// Byte-order sort and dedup, so results do not depend on the database's collation.
pub fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort_unstable();
    names.dedup();
    names
}

/// `(parent, child)` link rows grouped by parent, children sorted.
pub fn grouped(pairs: Vec<(String, String)>) -> HashMap<String, Vec<String>> {
    let mut groups: HashMap<String, Vec<String>> = HashMap::new();
    for (parent, child) in pairs {
        groups.entry(parent).or_default().push(child);
    }
    groups.into_iter().map(|(k, v)| (k, sorted(v))).collect()
}

/// `(status, count)` rows as a count for every status in `all`, zeros included.
pub fn by_status<S: Copy + PartialEq>(
    all: &[S],
    counts: Vec<(String, i64)>,
    parse: fn(&str) -> StoreResult<S>,
) -> StoreResult<Vec<(S, i64)>> {
    let mut out: Vec<(S, i64)> = all.iter().map(|s| (*s, 0)).collect();
    for (name, n) in counts {
        let status = parse(&name)?;
        if let Some(slot) = out.iter_mut().find(|(s, _)| *s == status) {
            slot.1 += n;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_values_are_errors() {
        assert!(matches!(
            user_status("gone"),
            Err(StoreError::Unavailable(_))
        ));
        assert!(matches!(org_status(""), Err(StoreError::Unavailable(_))));
        assert!(matches!(
            account_level("owner"),
            Err(StoreError::Unavailable(_))
        ));
        assert!(count_u32("failed_logins", -1).is_err());
        assert!(format_expires(i64::MAX).is_err());
    }

    #[test]
    fn status_counts_include_zeros_and_reject_unknown_names() {
        let counts = vec![("active".to_string(), 3), ("invited".to_string(), 1)];
        let all = by_status(&UserStatus::ALL, counts, user_status).ok();
        let expected = [
            (UserStatus::Invited, 1),
            (UserStatus::Active, 3),
            (UserStatus::Suspended, 0),
            (UserStatus::Disabled, 0),
        ];
        assert_eq!(all.as_deref(), Some(&expected[..]));
        let corrupt = vec![("zombie".to_string(), 1)];
        assert!(by_status(&UserStatus::ALL, corrupt, user_status).is_err());
    }

    #[test]
    fn link_rows_group_sorted() {
        let pairs = [("r", "b"), ("r", "a"), ("s", "c")];
        let pairs = pairs
            .iter()
            .map(|(p, c)| (p.to_string(), c.to_string()))
            .collect();
        let groups = grouped(pairs);
        assert_eq!(groups["r"], ["a", "b"]);
        assert_eq!(groups["s"], ["c"]);
    }

    #[test]
    fn expiry_is_utc_rfc3339() {
        assert_eq!(
            format_expires(1_798_675_200).ok().as_deref(),
            Some("2026-12-31T00:00:00Z")
        );
    }

    #[test]
    fn user_ids_are_u_and_16_hex() {
        let id = new_user_id();
        assert_eq!(id.len(), 18);
        assert!(id.starts_with("u-"));
        assert!(id[2..]
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }
}
