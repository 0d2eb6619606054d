//! Wiring: commands → configuration → server, background tasks and reload.

mod audit_cmd;
mod directory_cmd;
mod explain;
mod fanout;
mod reload;
mod review_cmd;
mod serve;
mod services;
mod watcher;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use crate::cli::{AuditCommand, CertsCommand, Cli, Command, DirectoryCommand};
use crate::config::{AccessLogPath, Config, Problem};
use crate::error::StartError;
use crate::proxy::Snapshot;

pub use reload::Reloader;

/// Run one command; exit codes as in docs/reference.md, Global options and exit codes.
pub fn main(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Run => match serve::run(&cli.config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => report(&e),
        },
        Command::Check => check(&cli.config),
        Command::Certs {
            command: CertsCommand::Dev { out },
        } => certs_dev(&out),
        Command::DemoPortal {
            listen,
            jwks_url,
            audience,
        } => demo_portal(
            listen,
            crate::demo_portal::PortalOptions { jwks_url, audience },
        ),
        Command::Directory {
            command: DirectoryCommand::Import { file, dry_run },
        } => directory_cmd::import(&cli.config, &file, dry_run),
        Command::Directory {
            command: DirectoryCommand::Export { with_secrets },
        } => directory_cmd::export(&cli.config, with_secrets),
        Command::Audit {
            command: AuditCommand::Verify { json },
        } => audit_cmd::verify(&cli.config, json),
        Command::Review { json, csv } => review_cmd::run(&cli.config, json, csv),
        Command::HashPassword => crate::password::hash_password_command(),
        Command::Explain {
            user,
            method,
            url,
            json,
            mfa,
            auth_age,
        } => {
            let sign_in = explain::SignIn {
                mfa,
                auth_age: auth_age.as_deref(),
            };
            explain::run(&cli.config, user.as_deref(), &method, &url, json, sign_in)
        }
    }
}

fn report(e: &StartError) -> ExitCode {
    for line in e.to_string().lines() {
        eprintln!("error: {line}");
    }
    e.exit_code()
}

/// A configuration that passed every check, with what was loaded on the way.
pub struct Validated {
    pub snapshot: Snapshot,
    pub server_cert: Option<Arc<rustls::sign::CertifiedKey>>,
    pub warnings: Vec<Problem>,
}

/// Load the configuration and every file it names; collect all problems.
pub fn validate(path: &Path) -> Result<Validated, Vec<Problem>> {
    let loaded = Config::load(path).map_err(|e| e.0)?;
    let config = Arc::new(loaded.config);
    let mut problems = Vec::new();
    let problem = |key: &str, reason: String| Problem {
        file: config.source.clone(),
        key: key.to_string(),
        reason,
    };
    let server_cert = match &config.server.tls {
        Some(tls) => match crate::tls::load_certified_key(&tls.cert_file, &tls.key_file) {
            Ok(cert) => Some(cert),
            Err(e) => {
                problems.push(problem("server.tls_cert_file", e.to_string()));
                None
            }
        },
        None => None,
    };
    if let AccessLogPath::File(file) = &config.access_log.path {
        if file
            .parent()
            .is_some_and(|dir| !dir.as_os_str().is_empty() && !dir.is_dir())
        {
            problems.push(problem(
                "access_log.path",
                format!("directory of {} does not exist", file.display()),
            ));
        }
    }
    // Route metrics go to a throwaway registry here; `run` binds the snapshot to the
    // process's own before serving.
    let snapshot = match Snapshot::build(config.clone(), None, &crate::metrics::Metrics::new()) {
        Ok(s) => Some(s),
        Err(mut more) => {
            problems.append(&mut more);
            None
        }
    };
    match snapshot {
        Some(snapshot) if problems.is_empty() => Ok(Validated {
            snapshot,
            server_cert,
            warnings: loaded.warnings,
        }),
        _ => Err(problems),
    }
}

fn check(path: &Path) -> ExitCode {
    let validated = validate(path).and_then(|v| {
        let directory = &v.snapshot.config.directory;
        match directory_cmd::reachable(directory) {
            Ok(()) => Ok(v),
            Err(reason) => Err(vec![Problem {
                file: v.snapshot.config.source.clone(),
                key: "directory.url".into(),
                reason: format!("directory not reachable: {reason}"),
            }]),
        }
    });
    match validated {
        Ok(v) => {
            for w in &v.warnings {
                eprintln!("warning: {w}");
            }
            println!("ok");
            ExitCode::SUCCESS
        }
        Err(problems) => {
            for p in &problems {
                eprintln!("error: {p}");
            }
            eprintln!("{} problem(s) found", problems.len());
            ExitCode::from(2)
        }
    }
}

fn certs_dev(out: &Path) -> ExitCode {
    match crate::tls::write_dev_certs(out) {
        Ok(files) => {
            for (what, path) in [
                ("CA certificate", &files.ca_cert),
                ("CA key", &files.ca_key),
                ("server certificate", &files.server_cert),
                ("server key", &files.server_key),
                ("assertion signing key (ES256)", &files.assertion_key),
            ] {
                println!("{what:32} {}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn demo_portal(
    listen: std::net::SocketAddr,
    options: crate::demo_portal::PortalOptions,
) -> ExitCode {
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(crate::demo_portal::run(listen, options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Application logs to stderr, level from `RUST_LOG` (default info); pingora's `log`
/// records are bridged in.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
