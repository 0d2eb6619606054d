//! `[upstreams.NAME]`: where routes send requests, and how.

use std::time::Duration;

use crate::config::file::UpstreamFile;
use crate::config::{HealthCheckConfig, UpstreamConfig};

use super::validator::{valid_name, Validator};

pub(super) fn upstreams(v: &mut Validator, value: Option<&toml::Value>) -> Vec<UpstreamConfig> {
    let Some(value) = value else {
        return Vec::new();
    };
    let Some(table) = value.as_table() else {
        v.problem("upstreams", "must be a table of [upstreams.NAME] sections");
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, value) in table {
        let key = format!("upstreams.{name}");
        if !valid_name(name) {
            v.problem(&key, "upstream names use letters, digits, '-', '_' and '.'");
        }
        if let Some(f) = v.section::<UpstreamFile>(&key, value) {
            out.push(upstream(v, &key, name, f));
        }
    }
    out
}

fn upstream(v: &mut Validator, key: &str, name: &str, f: UpstreamFile) -> UpstreamConfig {
    if f.addrs.is_empty() {
        v.problem(format!("{key}.addrs"), "needs at least one host:port");
    }
    let addrs = f
        .addrs
        .iter()
        .enumerate()
        .filter_map(|(i, a)| v.socket_addr(&format!("{key}.addrs[{i}]"), a))
        .collect();
    let tls = f.tls.unwrap_or(false);
    let sni = f.sni.clone().unwrap_or_else(|| {
        f.addrs
            .first()
            .and_then(|a| {
                a.rsplit_once(':')
                    .map(|(host, _)| host.trim_matches(['[', ']']).to_string())
            })
            .unwrap_or_default()
    });
    if tls && sni.is_empty() {
        v.problem(
            format!("{key}.sni"),
            "must name the upstream's host when tls = true (certificate verification needs it)",
        );
    }
    if f.ca_file.is_some() && !tls {
        v.warn(format!("{key}.ca_file"), "ignored: tls = false");
    }
    let health_check = f.health_check.map(|h| {
        if !h.path.starts_with('/') {
            v.problem(format!("{key}.health_check.path"), "must start with '/'");
        }
        HealthCheckConfig {
            path: h.path,
            interval: v.duration(
                &format!("{key}.health_check.interval"),
                h.interval.as_deref(),
                Duration::from_secs(5),
            ),
        }
    });
    UpstreamConfig {
        name: name.to_string(),
        addrs,
        tls,
        sni,
        ca_file: f.ca_file.as_deref().map(|p| v.path(p)),
        connect_timeout: v.duration(
            &format!("{key}.connect_timeout"),
            f.connect_timeout.as_deref(),
            Duration::from_secs(2),
        ),
        read_timeout: v.duration(
            &format!("{key}.read_timeout"),
            f.read_timeout.as_deref(),
            Duration::from_secs(30),
        ),
        health_check,
    }
}
