//! The command line: subcommands and global options (see docs/reference.md, Commands).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "partnergate",
    version,
    about = "Access gateway for partner portals"
)]
pub struct Cli {
    /// Configuration file.
    #[arg(
        long,
        global = true,
        env = "PARTNERGATE_CONFIG",
        default_value = "config/partnergate.toml"
    )]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the gateway; SIGTERM/SIGINT drain in-flight requests and stop.
    Run,
    /// Validate the configuration and the files it names; print `ok` or every problem.
    Check,
    /// Show which route, identity, rules and limits apply to a request, without sending it.
    ///
    /// Exit 0 whatever the decision; 2 for invalid usage or configuration (a --url the
    /// gateway would answer with 400 included); 1 when the directory cannot be reached.
    Explain {
        /// The user making the request: an email (case-insensitive) or a user id, looked
        /// up in the directory. Leave out for a request without credentials.
        #[arg(long, value_name = "EMAIL")]
        user: Option<String>,
        /// HTTP method (case-insensitive).
        #[arg(long, value_name = "METHOD", default_value = "GET")]
        method: String,
        /// An absolute URL (https://host[:port]/path?query; the port is ignored) or a
        /// path (/path?query) on the host of server.public_url.
        #[arg(long, value_name = "URL")]
        url: String,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Assume the user signed in with a second factor (default: a password only).
        #[arg(long)]
        mfa: bool,
        /// Assume the user signed in this long ago (e.g. "20m"; default: just now).
        #[arg(long, value_name = "DURATION")]
        auth_age: Option<String>,
    },
    /// Import or export the directory (orgs, roles, users, accounts, grants).
    Directory {
        #[command(subcommand)]
        command: DirectoryCommand,
    },
    /// Read a password on stdin and print its argon2id PHC string.
    HashPassword,
    /// Certificates for development.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
    /// Run the stand-in legacy partner portal used by the demo and the tests.
    DemoPortal {
        #[arg(long, default_value = "127.0.0.1:9000")]
        listen: SocketAddr,
        /// Verify `X-Partner-Assertion` against this JWKS (e.g. the gateway's
        /// `/.partnergate/jwks.json`); pages then refuse requests without a valid one.
        #[arg(long, value_name = "URL")]
        jwks_url: Option<reqwest::Url>,
        /// Required `aud` of the assertion (the gateway's upstream name); default: any.
        #[arg(long, value_name = "NAME", requires = "jwks_url")]
        audience: Option<String>,
    },
    /// Print the access review of every user: org, roles, grants, last login, last
    /// request and flags (inactive, never logged in, expired grant, admin, suspended).
    ///
    /// Exit 0 on success, 1 when the directory cannot be read, 2 for invalid usage or
    /// configuration.
    Review {
        /// Print a JSON array instead of a table.
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// Print CSV (RFC 4180, header row) instead of a table.
        #[arg(long)]
        csv: bool,
    },
    /// Audit log tools.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum DirectoryCommand {
    /// Load a directory TOML file (upsert by id/email).
    Import {
        file: PathBuf,
        #[arg(long)]
        dry_run: bool,
    },
    /// Write the directory as TOML to stdout.
    Export {
        #[arg(long)]
        with_secrets: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Write a development CA, a localhost server certificate and an ES256 assertion key.
    Dev {
        #[arg(long, default_value = "certs")]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the audit log's hash chain and report the first broken record.
    ///
    /// Exit 0 when the chain is intact, 1 when it is broken or the directory cannot be
    /// read (or has no audit log), 2 for an invalid configuration.
    Verify {
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

impl Command {
    /// The command's name as typed, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Run => "run",
            Command::Check => "check",
            Command::Explain { .. } => "explain",
            Command::Directory {
                command: DirectoryCommand::Import { .. },
            } => "directory import",
            Command::Directory {
                command: DirectoryCommand::Export { .. },
            } => "directory export",
            Command::HashPassword => "hash-password",
            Command::Certs { .. } => "certs dev",
            Command::DemoPortal { .. } => "demo-portal",
            Command::Review { .. } => "review",
            Command::Audit { .. } => "audit verify",
        }
    }
}
