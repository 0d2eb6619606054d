//! `[server]`: the listeners, the public URL, trusted proxies and the global limits.

use std::net::SocketAddr;
use std::time::Duration;

use crate::config::file::ServerFile;
use crate::config::{HostPattern, PublicUrl, RedisFallback, ServerConfig, TlsListenConfig};

use super::validator::Validator;

pub(super) fn server(v: &mut Validator, f: ServerFile) -> ServerConfig {
    let listen = f
        .listen
        .as_deref()
        .and_then(|s| v.socket_addr("server.listen", s));
    let tls = f.tls_listen.as_deref().and_then(|s| {
        let listen = v.socket_addr("server.tls_listen", s)?;
        let cert = f.tls_cert_file.as_deref();
        let key = f.tls_key_file.as_deref();
        if cert.is_none() {
            v.problem("server.tls_cert_file", "required when tls_listen is set");
        }
        if key.is_none() {
            v.problem("server.tls_key_file", "required when tls_listen is set");
        }
        Some(TlsListenConfig {
            listen,
            cert_file: v.path(cert?),
            key_file: v.path(key?),
        })
    });
    if f.listen.is_none() && f.tls_listen.is_none() {
        v.problem("server.listen", "set listen, tls_listen or both");
    }
    if f.tls_listen.is_none() && (f.tls_cert_file.is_some() || f.tls_key_file.is_some()) {
        v.warn("server.tls_cert_file", "ignored: tls_listen is not set");
    }
    let admin_raw = f.admin_listen.as_deref().unwrap_or("127.0.0.1:9090");
    let admin_listen = v
        .socket_addr("server.admin_listen", admin_raw)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9090)));
    let public_addrs = [listen, tls.as_ref().map(|t| t.listen)];
    if public_addrs.contains(&Some(admin_listen)) {
        v.problem(
            "server.admin_listen",
            "must differ from the public listeners",
        );
    }
    if listen.is_some() && listen == tls.as_ref().map(|t| t.listen) {
        v.problem("server.tls_listen", "must differ from listen");
    }
    let public_url = match f.public_url.as_deref() {
        Some(raw) => public_url(v, raw),
        None => default_public_url(listen, tls.as_ref()),
    };
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get() as i64)
        .unwrap_or(1);
    let threads = v.int("server.threads", f.threads, cpus, 1, 256) as usize;
    let trusted_proxies = f
        .trusted_proxies
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter_map(|(i, raw)| cidr(v, &format!("server.trusted_proxies[{i}]"), raw))
        .collect();
    let max_request_header_bytes = v.int(
        "server.max_request_header_bytes",
        f.max_request_header_bytes,
        16_384,
        1_024,
        1_048_576,
    ) as usize;
    let request_header_timeout = v.duration(
        "server.request_header_timeout",
        f.request_header_timeout.as_deref(),
        Duration::from_secs(10),
    );
    let shutdown_grace = v.duration(
        "server.shutdown_grace",
        f.shutdown_grace.as_deref(),
        Duration::from_secs(10),
    );
    let rate_limit_per_ip = f
        .rate_limit_per_ip
        .map(|r| v.rate("server.rate_limit_per_ip", r, RedisFallback::Local));
    let watch_config = f.watch_config.as_deref().map(|raw| {
        let d = v.duration("server.watch_config", Some(raw), Duration::from_secs(10));
        if d < Duration::from_secs(1) {
            v.problem(
                "server.watch_config",
                format!("\"{raw}\" is too short; at least \"1s\""),
            );
        }
        d
    });
    let owner_org_type = f.owner_org_type.unwrap_or_else(|| "owner".into());
    if owner_org_type.trim().is_empty() {
        v.problem("server.owner_org_type", "must not be empty");
    }
    ServerConfig {
        listen,
        tls,
        admin_listen,
        public_url,
        threads,
        trusted_proxies,
        max_request_header_bytes,
        request_header_timeout,
        shutdown_grace,
        rate_limit_per_ip,
        owner_org_type,
        watch_config,
    }
}

fn default_public_url(listen: Option<SocketAddr>, tls: Option<&TlsListenConfig>) -> PublicUrl {
    match (tls, listen) {
        (Some(t), _) => PublicUrl {
            https: true,
            authority: format!("localhost:{}", t.listen.port()),
        },
        (None, Some(l)) => PublicUrl {
            https: false,
            authority: format!("localhost:{}", l.port()),
        },
        (None, None) => PublicUrl {
            https: false,
            authority: "localhost".into(),
        },
    }
}

fn public_url(v: &mut Validator, raw: &str) -> PublicUrl {
    let (https, rest) = if let Some(rest) = raw.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = raw.strip_prefix("http://") {
        (false, rest)
    } else {
        v.problem(
            "server.public_url",
            format!("\"{raw}\" must start with https:// or http://"),
        );
        return default_public_url(None, None);
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest).to_ascii_lowercase();
    let host = authority
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(&authority);
    let host_ok = HostPattern::parse(host).is_ok()
        || host.parse::<std::net::IpAddr>().is_ok()
        || (host.starts_with('[') && host.ends_with(']'));
    let port_ok = authority
        .rsplit_once(':')
        .map(|(_, p)| p.parse::<u16>().is_ok())
        .unwrap_or(true);
    if authority.is_empty()
        || !host_ok
        || !port_ok
        || authority.contains('/')
        || host.starts_with("*.")
    {
        v.problem(
            "server.public_url",
            format!("\"{raw}\" must be scheme://host[:port] with no path"),
        );
    }
    PublicUrl { https, authority }
}

fn cidr(v: &mut Validator, key: &str, raw: &str) -> Option<ipnet::IpNet> {
    if let Ok(net) = raw.parse::<ipnet::IpNet>() {
        return Some(net);
    }
    if let Ok(ip) = raw.parse::<std::net::IpAddr>() {
        return Some(ipnet::IpNet::from(ip));
    }
    v.problem(key, format!("\"{raw}\" is not an IP address or CIDR range"));
    None
}
