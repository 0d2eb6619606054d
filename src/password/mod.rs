//! Passwords: the policy a new password must meet, argon2id hashing on dedicated threads
//! (never on a proxy thread), and the `hash-password` command.
//!
//! Passwords are never logged, echoed in messages, or truncated.

mod command;
mod hasher;
mod policy;

pub use command::hash_password_command;
pub use hasher::{
    default_threads, hash_now, verify_now, HashError, PasswordHasher, DEFAULT_QUEUE, ITERATIONS,
    MAX_DEFAULT_THREADS, MEMORY_KIB, PARALLELISM,
};
pub use policy::{PasswordPolicy, PasswordProblem, DEFAULT_MIN_LENGTH, MAX_LENGTH};
