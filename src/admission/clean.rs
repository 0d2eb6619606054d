//! Stage 1, clean: who is on the other end, and the request head made safe to route on.
//! The head limit, the normalised target and host, and the TLS name check happen here;
//! everything later sees only a [`CleanRequest`].

use std::net::IpAddr;

use http::request::Parts;

use crate::config::ServerConfig;
use crate::normalize::strict::Strictness;
use crate::normalize::{self, Malformed};

use super::rejection::{Reason, Rejection};

// Looked up by names parsed once, not on every request.
const X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");
const X_FORWARDED_FOR: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");

/// What the listener knows about the connection a request came on.
#[derive(Debug, Clone, Copy, Default)]
pub struct Connection<'a> {
    /// The socket peer's address (none for a non-IP socket).
    pub addr: Option<IpAddr>,
    pub tls: bool,
    /// The server name the TLS client asked for, lower-cased.
    pub sni: Option<&'a str>,
    /// What was wrong with the request head as it arrived on the wire (HTTP/1), before
    /// pingora parsed it: some faults do not survive parsing (see `crate::wire`).
    pub raw_head: Option<Strictness>,
}

/// The client as the gateway sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// The socket peer.
    pub addr: Option<IpAddr>,
    /// The client: the peer, or behind trusted proxies the right-most untrusted
    /// `X-Forwarded-For` address.
    pub client_ip: Option<IpAddr>,
    /// The socket peer is one of `server.trusted_proxies`.
    pub trusted: bool,
    pub tls: bool,
}

impl Peer {
    pub fn of(conn: &Connection<'_>, head: &Parts, server: &ServerConfig) -> Peer {
        let Some(addr) = conn.addr else {
            return Peer {
                addr: None,
                client_ip: None,
                trusted: false,
                tls: conn.tls,
            };
        };
        let trusted = server.is_trusted_proxy(addr);
        let xff = forwarded_for(&head.headers);
        Peer {
            addr: Some(addr),
            client_ip: Some(client_ip(addr, xff.as_deref(), |ip| {
                server.is_trusted_proxy(ip)
            })),
            trusted,
            tls: conn.tls,
        }
    }

    /// A well-formed `X-Request-Id` sent by a trusted proxy, to be kept.
    pub fn request_id<'h>(&self, head: &'h Parts) -> Option<&'h str> {
        if !self.trusted {
            return None;
        }
        head.headers
            .get(&X_REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .filter(|v| normalize::is_valid_request_id(v))
    }
}

/// A request head the gateway can route on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanRequest {
    /// Lower-case, without port.
    pub host: String,
    /// Normalised; what policy matches and what the upstream receives.
    pub path: String,
    pub query: Option<String>,
    pub peer: Peer,
    /// The client asks to switch to WebSocket.
    pub websocket: bool,
}

/// Clean the head: size limit, target, host, and on TLS the host against the SNI.
pub fn clean(
    head: &Parts,
    conn: &Connection<'_>,
    peer: Peer,
    max_head: usize,
) -> Result<CleanRequest, Rejection> {
    if head_bytes(head) > max_head {
        return Err(Rejection::malformed(Reason::HeaderTooLarge));
    }
    if let Some(fault) = conn.raw_head {
        return Err(Rejection::malformed(Reason::Strict(fault)));
    }
    let target = head.uri.path_and_query().map_or("", |pq| pq.as_str());
    let (path, query) = normalize::normalize_target(target)
        .map_err(|m| Rejection::malformed(Reason::Malformed(m)))?;
    let host = request_host(head)
        .ok_or(Malformed::BadHost)
        .and_then(normalize::normalize_host)
        .map_err(|m| Rejection::malformed(Reason::Malformed(m)))?;
    if conn.sni.is_some_and(|name| name != host) {
        return Err(Rejection::malformed(Reason::Misdirected));
    }
    Ok(CleanRequest {
        host: host.into_owned(),
        path: path.into_owned(),
        query: query.map(str::to_string),
        peer,
        websocket: is_websocket_upgrade(head),
    })
}

/// The client address: the peer, unless the peer is a trusted proxy, in which case the
/// right-most untrusted address of `X-Forwarded-For` (proxies append on the right).
pub fn client_ip(peer: IpAddr, xff: Option<&str>, trusted: impl Fn(IpAddr) -> bool) -> IpAddr {
    if !trusted(peer) {
        return peer;
    }
    let Some(xff) = xff else { return peer };
    let mut leftmost = None;
    for item in xff.rsplit(',') {
        let Some(ip) = parse_forwarded_ip(item) else {
            // An unparsable hop: stop trusting anything further left.
            return leftmost.unwrap_or(peer);
        };
        if !trusted(ip) {
            return ip;
        }
        leftmost = Some(ip);
    }
    leftmost.unwrap_or(peer)
}

/// Every `X-Forwarded-For` field line as one list, in order: a proxy may add its own line
/// rather than extend the client's, and the last hop must not be lost.
pub fn forwarded_for(headers: &http::HeaderMap) -> Option<std::borrow::Cow<'_, str>> {
    let mut lines = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let first = lines.next()?;
    let rest: Vec<&str> = lines.collect();
    if rest.is_empty() {
        return Some(std::borrow::Cow::Borrowed(first));
    }
    let mut all = String::from(first);
    for line in rest {
        all.push_str(", ");
        all.push_str(line);
    }
    Some(std::borrow::Cow::Owned(all))
}

fn parse_forwarded_ip(item: &str) -> Option<IpAddr> {
    let item = item.trim();
    item.parse::<IpAddr>()
        .ok()
        .or_else(|| item.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
}

/// The request's host: `:authority` (HTTP/2, absolute-form) or the single Host header.
pub fn request_host(head: &Parts) -> Option<&str> {
    if let Some(authority) = head.uri.authority() {
        return Some(authority.as_str());
    }
    let mut hosts = head.headers.get_all(http::header::HOST).iter();
    let first = hosts.next()?;
    if hosts.next().is_some() {
        return None;
    }
    first.to_str().ok()
}

/// Bytes of the request head as the client sent it (approximately: line + fields).
fn head_bytes(head: &Parts) -> usize {
    let target = head.uri.path_and_query().map_or(1, |pq| pq.as_str().len())
        + head.uri.authority().map_or(0, |a| a.as_str().len());
    let line = head.method.as_str().len() + target + 11;
    head.headers.iter().fold(line, |acc, (name, value)| {
        acc + name.as_str().len() + value.len() + 4
    })
}

fn is_websocket_upgrade(head: &Parts) -> bool {
    head.headers.get_all(http::header::UPGRADE).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("websocket"))
        })
    })
}

/// Browser navigation (a GET accepting HTML) is sent to the login page; the rest get 401.
pub fn is_browser_navigation(head: &Parts) -> bool {
    head.method == http::Method::GET
        && head
            .headers
            .get_all(http::header::ACCEPT)
            .iter()
            .any(|v| contains_ci(v.as_bytes(), b"text/html"))
}

fn contains_ci(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}
