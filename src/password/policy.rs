//! Which passwords a user may set (`[login] password_min_length`): long enough,
//! not too long to hash (and never truncated), not a well-known password, not one character
//! repeated.

use std::collections::HashSet;
use std::fmt;
use std::sync::OnceLock;

/// Longest accepted password, in characters. Longer ones are refused rather than truncated,
/// so what the user typed is exactly what is verified.
pub const MAX_LENGTH: usize = 128;

/// The contract's default `password_min_length`.
pub const DEFAULT_MIN_LENGTH: usize = 12;

/// Well-known passwords, one per line, lower case; `#` lines are comments.
const COMMON_PASSWORDS: &str = include_str!("common-passwords.txt");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Fewest characters (Unicode scalar values, not bytes).
    pub min_length: usize,
}

/// Why a password was refused. The message states the rule and never echoes the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordProblem {
    TooShort { min: usize },
    TooLong { max: usize },
    Common,
    RepeatedCharacter,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy {
            min_length: DEFAULT_MIN_LENGTH,
        }
    }
}

impl PasswordPolicy {
    pub fn new(min_length: usize) -> Self {
        PasswordPolicy { min_length }
    }

    /// Accept or refuse `password`; the first rule it breaks is the answer.
    pub fn check(&self, password: &str) -> Result<(), PasswordProblem> {
        let length = password.chars().count();
        if length < self.min_length.max(1) {
            return Err(PasswordProblem::TooShort {
                min: self.min_length.max(1),
            });
        }
        if length > MAX_LENGTH {
            return Err(PasswordProblem::TooLong { max: MAX_LENGTH });
        }
        if is_one_repeated_character(password) {
            return Err(PasswordProblem::RepeatedCharacter);
        }
        if is_common(password) {
            return Err(PasswordProblem::Common);
        }
        Ok(())
    }
}

impl fmt::Display for PasswordProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordProblem::TooShort { min } => {
                write!(f, "Choose a password of at least {min} characters.")
            }
            PasswordProblem::TooLong { max } => {
                write!(f, "Choose a password of at most {max} characters.")
            }
            PasswordProblem::Common => f.write_str(
                "This password is too common and easy to guess; choose a longer, less predictable one.",
            ),
            PasswordProblem::RepeatedCharacter => {
                f.write_str("A password cannot be a single character repeated.")
            }
        }
    }
}

impl std::error::Error for PasswordProblem {}

fn is_one_repeated_character(password: &str) -> bool {
    let mut chars = password.chars();
    match chars.next() {
        Some(first) => chars.all(|c| c == first),
        None => false,
    }
}

fn is_common(password: &str) -> bool {
    common_passwords().contains(password.to_lowercase().as_str())
}

fn common_passwords() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| {
        COMMON_PASSWORDS
            .lines()
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_table() {
        let policy = PasswordPolicy::new(12);
        let too_short = Err(PasswordProblem::TooShort { min: 12 });
        let too_long = Err(PasswordProblem::TooLong { max: 128 });
        let cases: Vec<(String, Result<(), PasswordProblem>)> = vec![
            (String::new(), too_short),
            ("short".into(), too_short),
            ("elevenchars".into(), too_short),
            // Characters, not bytes: 11 two-byte characters are still too short.
            ("ééééééééééa".into(), too_short),
            ("twelve chars".into(), Ok(())),
            ("partner-demo-2026".into(), Ok(())),
            ("correct staple orbit lantern".into(), Ok(())),
            ("ab".repeat(64), Ok(())),
            ("ab".repeat(64) + "c", too_long),
            ("x".repeat(200), too_long),
            ("a".repeat(12), Err(PasswordProblem::RepeatedCharacter)),
            ("€".repeat(20), Err(PasswordProblem::RepeatedCharacter)),
            ("password1234".into(), Err(PasswordProblem::Common)),
            ("PassWord1234".into(), Err(PasswordProblem::Common)),
            ("QWERTYUIOP123".into(), Err(PasswordProblem::Common)),
            ("iloveyou1234".into(), Err(PasswordProblem::Common)),
            ("1qaz2wsx3edc".into(), Err(PasswordProblem::Common)),
            ("PartnerGate2026".into(), Err(PasswordProblem::Common)),
            ("Welcome12345".into(), Err(PasswordProblem::Common)),
            ("123456789012".into(), Err(PasswordProblem::Common)),
        ];
        for (password, expected) in cases {
            assert_eq!(policy.check(&password), expected, "{password:?}");
        }
    }

    #[test]
    fn lower_minimum_still_refuses_common_passwords() {
        let policy = PasswordPolicy::new(6);
        assert_eq!(policy.check("Dragon"), Err(PasswordProblem::Common));
        assert_eq!(policy.check("tartan"), Ok(()));
        assert_eq!(
            PasswordPolicy::new(0).check(""),
            Err(PasswordProblem::TooShort { min: 1 })
        );
    }

    #[test]
    fn messages_state_the_rule_without_the_password() {
        let policy = PasswordPolicy::default();
        for password in [
            "hunter2",
            "password1234",
            "zzzzzzzzzzzzzz",
            &"y".repeat(129),
        ] {
            let problem = policy.check(password).expect_err(password);
            let message = problem.to_string();
            assert!(!message.contains(password), "{message}");
            assert!(message.ends_with('.'), "{message}");
        }
        assert_eq!(
            PasswordProblem::TooShort { min: 12 }.to_string(),
            "Choose a password of at least 12 characters."
        );
    }

    #[test]
    fn common_list_is_lower_case_and_trimmed() {
        for entry in common_passwords() {
            assert_eq!(*entry, entry.to_lowercase(), "{entry:?}");
            assert_eq!(*entry, entry.trim(), "{entry:?}");
        }
        assert!(common_passwords().len() > 300);
    }
}
