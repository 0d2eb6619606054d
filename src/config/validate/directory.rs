//! `[directory]`: the database behind the directory and the identity cache.

use std::time::Duration;

use crate::config::file::DirectoryFile;
use crate::config::DirectoryConfig;

use super::validator::Validator;

pub(super) fn directory(v: &mut Validator, f: DirectoryFile) -> DirectoryConfig {
    // The environment wins, so a database password need not be written in the file.
    let url = std::env::var("PARTNERGATE_DIRECTORY_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .or(f.url)
        .unwrap_or_else(|| "sqlite://data/partnergate.db".into());
    let url = if let Some(rest) = url.strip_prefix("sqlite://") {
        if rest.is_empty() {
            v.problem("directory.url", "sqlite:// needs a file path");
        }
        format!("sqlite://{}", v.path(rest).display())
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        url
    } else {
        v.problem("directory.url", "must start with sqlite:// or postgres://");
        url
    };
    DirectoryConfig {
        url,
        cache_ttl: v.duration(
            "directory.cache_ttl",
            f.cache_ttl.as_deref(),
            Duration::from_secs(30),
        ),
        cache_capacity: v.int(
            "directory.cache_capacity",
            f.cache_capacity,
            100_000,
            1,
            100_000_000,
        ) as u64,
    }
}
