//! Errors that end a command, with the exit code each maps to (2 invalid config, 1 runtime).

use std::net::SocketAddr;
use std::process::ExitCode;

use crate::config::Problem;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Invalid configuration: every problem, exit 2.
    #[error("{}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Config { problems: Vec<Problem> },
    /// A listener address cannot be bound, exit 1.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// Anything else at runtime, exit 1.
    #[error("{0}")]
    Runtime(String),
}

impl StartError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            StartError::Config { .. } => ExitCode::from(2),
            StartError::Bind { .. } | StartError::Runtime(_) => ExitCode::from(1),
        }
    }
}

impl From<Vec<Problem>> for StartError {
    fn from(problems: Vec<Problem>) -> Self {
        StartError::Config { problems }
    }
}
