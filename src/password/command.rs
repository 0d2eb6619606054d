//! `partnergate hash-password`: one line on stdin → an argon2id PHC string on stdout.

use std::io::BufRead as _;
use std::process::ExitCode;

use super::hasher::hash_now;
use super::policy::{PasswordPolicy, MAX_LENGTH};

/// Read at most this many bytes: enough for [`MAX_LENGTH`] four-byte characters and a
/// line ending, so a stray pipe cannot fill memory.
const MAX_INPUT_BYTES: u64 = (MAX_LENGTH as u64) * 4 + 2;

#[derive(Debug, PartialEq, Eq)]
enum InputProblem {
    Empty,
    NotUtf8,
    TooLong,
    Unreadable(String),
}

impl std::fmt::Display for InputProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InputProblem::Empty => f.write_str("no password on stdin (expected one line)"),
            InputProblem::NotUtf8 => f.write_str("the password on stdin is not valid UTF-8"),
            InputProblem::TooLong => write!(
                f,
                "the password on stdin is longer than {MAX_LENGTH} characters"
            ),
            InputProblem::Unreadable(reason) => write!(f, "cannot read stdin: {reason}"),
        }
    }
}

/// Hash the password read from stdin and print its PHC string. Exit 2 on an empty or
/// unusable input; 1 if hashing itself fails. A password the default policy would refuse
/// is still hashed (an operator may have reasons), with a warning on stderr.
pub fn hash_password_command() -> ExitCode {
    let password = match read_password(std::io::stdin().lock()) {
        Ok(password) => password,
        Err(problem) => {
            eprintln!("error: hash-password: {problem}");
            return ExitCode::from(2);
        }
    };
    if let Err(problem) = PasswordPolicy::default().check(&password) {
        eprintln!("warning: hash-password: the default password policy would refuse this password: {problem}");
    }
    match hash_now(&password) {
        Ok(phc) => {
            println!("{phc}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: hash-password: {error}");
            ExitCode::from(1)
        }
    }
}

/// The first line of `input`, without its line ending (`\n` or `\r\n`) and nothing else:
/// leading and trailing spaces are part of the password.
fn read_password(input: impl std::io::BufRead) -> Result<String, InputProblem> {
    let mut line = Vec::new();
    input
        .take(MAX_INPUT_BYTES)
        .read_until(b'\n', &mut line)
        .map_err(|e| InputProblem::Unreadable(e.to_string()))?;
    let line = strip_line_ending(&line);
    let password = String::from_utf8(line.to_vec()).map_err(|_| InputProblem::NotUtf8)?;
    match password.chars().count() {
        0 => Err(InputProblem::Empty),
        n if n > MAX_LENGTH => Err(InputProblem::TooLong),
        _ => Ok(password),
    }
}

fn strip_line_ending(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_one_line_and_strips_only_the_line_ending() {
        let cases: [(&[u8], Result<&str, InputProblem>); 9] = [
            (b"partner-demo-2026\n", Ok("partner-demo-2026")),
            (b"partner-demo-2026", Ok("partner-demo-2026")),
            (b"windows line\r\n", Ok("windows line")),
            (b"  spaced out  \n", Ok("  spaced out  ")),
            (b"first\nsecond\n", Ok("first")),
            (b"\n", Err(InputProblem::Empty)),
            (b"", Err(InputProblem::Empty)),
            (b"caf\xe9\n", Err(InputProblem::NotUtf8)),
            (&[b'x'; 129], Err(InputProblem::TooLong)),
        ];
        for (input, expected) in cases {
            assert_eq!(
                read_password(input),
                expected.map(str::to_owned),
                "{input:?}"
            );
        }
    }

    #[test]
    fn longest_password_fits_in_the_read_limit() {
        let longest = "€".repeat(MAX_LENGTH) + "\r\n";
        assert_eq!(read_password(longest.as_bytes()).map(|p| p.len()), Ok(384));
    }
}
