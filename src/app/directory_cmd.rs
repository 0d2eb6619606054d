//! `partnergate directory import|export` and the directory part of `check`.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use crate::config::{Config, DirectoryConfig};
use crate::directory::{self, DirectoryData, ImportCounts, StoreError};

pub(super) fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start runtime: {e}");
            ExitCode::from(1)
        })
}

pub(super) fn load_config(path: &Path) -> Result<Config, ExitCode> {
    Config::load(path).map(|l| l.config).map_err(|e| {
        for p in &e.0 {
            eprintln!("error: {p}");
        }
        ExitCode::from(2)
    })
}

/// Read and parse a directory file; every problem names the file and where.
fn read_file(file: &Path) -> Result<DirectoryData, ExitCode> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        eprintln!("error: {}: cannot read: {e}", file.display());
        ExitCode::from(2)
    })?;
    toml::from_str(&text).map_err(|e| {
        let message = e.message().to_string();
        let place = e
            .span()
            .map(|s| line_of(&text, s.start))
            .unwrap_or_default();
        eprintln!("error: {}:{place} {message}", file.display());
        ExitCode::from(2)
    })
}

fn line_of(text: &str, offset: usize) -> String {
    let line = text.get(..offset).unwrap_or(text).matches('\n').count() + 1;
    format!(" line {line}:")
}

pub fn import(config_path: &Path, file: &Path, dry_run: bool) -> ExitCode {
    let run = || -> Result<ImportCounts, ExitCode> {
        let config = load_config(config_path)?;
        let data = read_file(file)?;
        let rt = runtime()?;
        rt.block_on(async {
            let store = connect(&config.directory).await?;
            let now = crate::clock::system().now();
            store
                .import(&data, now, dry_run)
                .await
                .map_err(|e| store_failure(file, e))
        })
    };
    match run() {
        Ok(c) => {
            let verb = if dry_run {
                "dry run, nothing written: would import"
            } else {
                "imported"
            };
            println!(
                "{verb} {} role(s), {} org(s), {} user(s), {} account(s), {} grant(s)",
                c.roles, c.orgs, c.users, c.accounts, c.grants
            );
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

pub fn export(config_path: &Path, with_secrets: bool) -> ExitCode {
    let run = || -> Result<String, ExitCode> {
        let config = load_config(config_path)?;
        let rt = runtime()?;
        let data = rt.block_on(async {
            let store = connect(&config.directory).await?;
            store
                .export(with_secrets)
                .await
                .map_err(|e| store_failure(Path::new("directory"), e))
        })?;
        toml::to_string(&data).map_err(|e| {
            eprintln!("error: cannot write TOML: {e}");
            ExitCode::from(1)
        })
    };
    match run() {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

pub(super) async fn connect(
    config: &DirectoryConfig,
) -> Result<std::sync::Arc<dyn directory::Store>, ExitCode> {
    let opened =
        tokio::time::timeout(Duration::from_secs(30), directory::connect(&config.url)).await;
    match opened {
        Ok(Ok(store)) => Ok(store),
        Ok(Err(e)) => {
            eprintln!(
                "error: directory {}: {e}",
                super::services::redact(&config.url)
            );
            Err(ExitCode::from(1))
        }
        Err(_) => {
            eprintln!(
                "error: directory {}: no answer within 30s",
                super::services::redact(&config.url)
            );
            Err(ExitCode::from(1))
        }
    }
}

fn store_failure(file: &Path, e: StoreError) -> ExitCode {
    match e {
        StoreError::Invalid(problems) => {
            for p in &problems {
                eprintln!("error: {}: {p}", file.display());
            }
            eprintln!("{} problem(s) found; nothing was written", problems.len());
            ExitCode::from(2)
        }
        StoreError::Unavailable(reason)
        | StoreError::NotFound(reason)
        | StoreError::Conflict(reason) => {
            eprintln!("error: {reason}");
            ExitCode::from(1)
        }
        e @ StoreError::Refused(_) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// `check`: can the directory be reached? SQLite: its directory exists or can be
/// created. PostgreSQL: a connection and `SELECT 1` (no migrations run).
pub fn reachable(config: &DirectoryConfig) -> Result<(), String> {
    if let Some(path) = config.url.strip_prefix("sqlite://") {
        let path = Path::new(path.split('?').next().unwrap_or(path));
        let mut dir = path.parent();
        while let Some(d) = dir {
            if d.as_os_str().is_empty() || d.is_dir() {
                return writable(d);
            }
            dir = d.parent();
        }
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        use sqlx::Connection;
        let connect = sqlx::postgres::PgConnection::connect(&config.url);
        let mut conn = tokio::time::timeout(Duration::from_secs(5), connect)
            .await
            .map_err(|_| "no answer within 5s".to_string())?
            .map_err(|e| e.to_string())?;
        sqlx::query("SELECT 1")
            .execute(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

fn writable(dir: &Path) -> Result<(), String> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    match std::fs::metadata(dir) {
        Ok(m) if m.permissions().readonly() => Err(format!("{} is read-only", dir.display())),
        Ok(_) => Ok(()),
        Err(e) => Err(format!("{}: {e}", dir.display())),
    }
}
