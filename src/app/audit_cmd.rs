//! `partnergate audit verify`: walk the audit log's hash chain and report the first broken
//! record. Exit 0 intact, 1 broken or unreadable, 2 invalid configuration.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::config::DirectoryConfig;
use crate::directory::{self, AuditVerification, Store};

use super::directory_cmd::{load_config, runtime};
use super::services::redact;

pub fn verify(config_path: &Path, json: bool) -> ExitCode {
    let run = || -> Result<AuditVerification, ExitCode> {
        let config = load_config(config_path)?;
        let rt = runtime()?;
        rt.block_on(async {
            let store = open(&config.directory).await?;
            store.audit_verify().await.map_err(|e| {
                eprintln!("error: directory {}: {e}", redact(&config.directory.url));
                ExitCode::from(1)
            })
        })
    };
    match run() {
        Ok(v) => report(&v, json),
        Err(code) => code,
    }
}

/// The directory as it is: verifying must not migrate it, nor create an SQLite file.
pub(super) async fn open(config: &DirectoryConfig) -> Result<Arc<dyn Store>, ExitCode> {
    let fail = |reason: String| {
        eprintln!("error: directory {}: {reason}", redact(&config.url));
        ExitCode::from(1)
    };
    if let Some(file) = sqlite_file(&config.url) {
        if !file.exists() {
            return Err(fail("no such database file".into()));
        }
    }
    let opened = tokio::time::timeout(Duration::from_secs(30), directory::open(&config.url));
    match opened.await {
        Ok(Ok(store)) => Ok(store),
        Ok(Err(e)) => Err(fail(e.to_string())),
        Err(_) => Err(fail("no answer within 30s".into())),
    }
}

fn sqlite_file(url: &str) -> Option<&Path> {
    let rest = url
        .strip_prefix("sqlite://")
        .or(url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| Path::new(path))
}

fn report(v: &AuditVerification, json: bool) -> ExitCode {
    if json {
        let body = serde_json::json!({
            "ok": v.is_intact(),
            "records": v.records,
            "head_seq": v.head_seq,
            "first_problem": v.first_problem,
        });
        println!("{body}");
    } else {
        println!("{}", summary(v));
    }
    if v.is_intact() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn summary(v: &AuditVerification) -> String {
    let head = match v.head_seq {
        Some(seq) => format!("head seq {seq}"),
        None => "no head".to_string(),
    };
    match &v.first_problem {
        None => format!("ok: {} records, {head}", v.records),
        Some(p) => format!(
            "broken at seq {}: {} ({} records, {head})",
            p.seq, p.problem, v.records
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::AuditProblem;

    #[test]
    fn summaries() {
        let mut v = AuditVerification {
            records: 12,
            head_seq: Some(12),
            first_problem: None,
        };
        assert_eq!(summary(&v), "ok: 12 records, head seq 12");
        v.first_problem = Some(AuditProblem {
            seq: 5,
            problem: "seq 5 missing (deleted)".into(),
        });
        assert_eq!(
            summary(&v),
            "broken at seq 5: seq 5 missing (deleted) (12 records, head seq 12)"
        );
    }

    #[test]
    fn sqlite_paths() {
        assert_eq!(
            sqlite_file("sqlite://data/x.db?mode=rwc"),
            Some(Path::new("data/x.db"))
        );
        assert_eq!(sqlite_file("sqlite:x.db"), Some(Path::new("x.db")));
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://db/x"), None);
    }
}
