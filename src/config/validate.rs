//! File structs → validated [`Config`], collecting every problem on the way.
//!
//! The [`validator::Validator`] collects the problems; each section of the file has its
//! own module that turns its part of the file into its part of the [`Config`].

mod access_log_metrics;
mod directory;
mod issuers;
mod lifecycle;
mod mail;
mod redis;
mod routes;
mod server;
mod session_login;
mod upstreams;
mod validator;

use std::path::Path;

use super::file::{self, ServerFile};
use super::{Config, ConfigErrors, Loaded};
use validator::Validator;

pub(super) fn build(path: &Path, text: &str) -> Result<Loaded, ConfigErrors> {
    let mut v = Validator::new(path);
    let table = match text.parse::<toml::Table>() {
        Ok(t) => t,
        Err(e) => {
            let at = e
                .span()
                .map(|s| line_col(text, s.start))
                .unwrap_or_else(|| "(syntax)".into());
            v.problem(at, e.message().trim().to_string());
            return Err(v.into_errors());
        }
    };
    for key in table.keys() {
        if !file::SECTIONS.contains(&key.as_str()) {
            v.problem(
                key.clone(),
                format!(
                    "unknown section; expected one of {}",
                    file::SECTIONS.join(", ")
                ),
            );
        }
    }
    let config = assemble(&mut v, &table);
    v.finish(config)
}

fn line_col(text: &str, offset: usize) -> String {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    format!("line {line}, column {col}")
}

/// Every section in file-format order, so the problems come out in that order.
fn assemble(v: &mut Validator, table: &toml::Table) -> Config {
    let server_file: ServerFile = match table.get("server") {
        Some(value) => v.section("server", value).unwrap_or_default(),
        None => {
            v.problem("server", "missing section [server]");
            ServerFile::default()
        }
    };
    let server = server::server(v, server_file);
    let upstreams = upstreams::upstreams(v, table.get("upstreams"));
    let routes = routes::routes(v, table.get("routes"), &upstreams);
    routes::shadow_warnings(v, &routes);
    let session_file = v.optional(table, "session");
    let session = session_login::session(v, session_file, &server.public_url);
    let login_file = v.optional(table, "login");
    let login = session_login::login(v, login_file);
    let directory_file = v.optional(table, "directory");
    let directory = directory::directory(v, directory_file);
    let issuers = issuers::issuers(v, table.get("issuers"));
    if issuers.is_empty() {
        routes::need_issuers(v, &routes);
    }
    let assertion = table
        .get("assertion")
        .and_then(|value| v.section::<file::AssertionFile>("assertion", value))
        .map(|a| issuers::assertion(v, a));
    let redis = table
        .get("redis")
        .and_then(|value| v.section::<file::RedisFile>("redis", value))
        .map(|r| redis::redis(v, r));
    let access_log_file = v.optional(table, "access_log");
    let access_log = access_log_metrics::access_log(v, access_log_file);
    let metrics_file = v.optional(table, "metrics");
    let metrics = access_log_metrics::metrics(v, metrics_file);
    let lifecycle_file = v.optional(table, "lifecycle");
    let lifecycle = lifecycle::lifecycle(v, lifecycle_file);
    let mail = table
        .get("mail")
        .and_then(|value| v.section::<file::MailFile>("mail", value))
        .and_then(|m| mail::mail(v, m));
    let tracing = table
        .get("tracing")
        .and_then(|value| v.section::<file::TracingFile>("tracing", value))
        .and_then(|t| tracing_section(v, t));
    Config {
        source: v.file().to_path_buf(),
        server,
        upstreams,
        routes: routes.into_iter().map(|(_, route)| route).collect(),
        session,
        login,
        directory,
        issuers,
        assertion,
        redis,
        access_log,
        metrics,
        lifecycle,
        mail,
        tracing,
    }
}

/// `[tracing]`: an http(s) collector URL, a sampling ratio in 0..=1.
fn tracing_section(v: &mut Validator, f: file::TracingFile) -> Option<super::TracingConfig> {
    let endpoint = match f.otlp_endpoint.as_deref().map(str::trim) {
        Some(e) if (e.starts_with("http://") || e.starts_with("https://")) && e.len() > 8 => {
            e.trim_end_matches('/').to_string()
        }
        Some(e) => {
            v.problem(
                "tracing.otlp_endpoint",
                format!("{e:?} is not an http:// or https:// URL (the collector's OTLP/HTTP port, e.g. http://127.0.0.1:4318)"),
            );
            return None;
        }
        None => {
            v.problem("tracing.otlp_endpoint", "required in [tracing]");
            return None;
        }
    };
    let sample_ratio = f.sample_ratio.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&sample_ratio) {
        v.problem(
            "tracing.sample_ratio",
            format!("{sample_ratio} must be between 0 and 1"),
        );
        return None;
    }
    let service_name = f.service_name.unwrap_or_else(|| "partnergate".into());
    Some(super::TracingConfig {
        otlp_endpoint: endpoint,
        sample_ratio,
        service_name,
    })
}

#[cfg(test)]
mod tests;
