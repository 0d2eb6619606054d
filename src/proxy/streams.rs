//! Closing the open streams of a revoked user: suspending a user or org closes its open
//! WebSocket and HTTP/2 streams, on every instance.
//!
//! pingora 0.9 gives no handle to end a proxied session from another task, and the body
//! loop of an upgraded (WebSocket) connection only wakes on I/O. What it does hand out is
//! the upstream connection's socket (`connected_to_upstream`'s fd). Shutting that socket
//! down (`shutdown(2)`, both directions) makes pingora read EOF from the upstream and end
//! the session: the client's WebSocket connection is closed, an HTTP/2 stream is reset.
//! Upstream connections speak HTTP/1 (ALPN h1 only), one request at a time, so while a
//! request runs its upstream socket is its own; the client's connection (which, behind a
//! trusted proxy or over HTTP/2, may carry other users' requests) is never touched.
//!
//! The danger of a raw fd is its number being reused: once pingora closes the socket, the
//! same number can name any new socket or file of the process. Two guards:
//! 1. Every upstream connection the proxy opens carries a [`ConnTracer`], a pingora
//!    `Tracing` object that travels with the connection (into the pool and back). pingora
//!    calls its `on_disconnected` from the connection's `Drop`, *before* the socket is
//!    closed; it marks the [`Conn`] closed under the lock a cut holds across its
//!    `shutdown`. So a cut that finds the connection open shuts down the right socket: the
//!    close, and any reuse of the number, waits until the cut is done.
//! 2. Belt and braces: the kernel socket cookie (`SO_COOKIE`, unique per socket for the
//!    life of the system), read while a request was using the connection, must still be
//!    the fd's; otherwise nothing is shut down.
//!
//! Tracked ("streams"): requests of an authenticated user that ask for an upgrade
//! (WebSocket), come over HTTP/2, or are answered with `text/event-stream`. An ordinary
//! HTTP/1 request costs the tracer's allocation, and a new upstream connection one map
//! insert and one remove.
//!
//! On a directory change the watcher calls [`Streams::revoke`] for the users and orgs it
//! names (every stream for `all`): a stream whose user is no longer usable, whose session
//! is gone (logout everywhere, suspension) or whose route would now deny it is cut.
//! Re-checking instead of cutting on any change keeps a `directory import` or a
//! reactivation from closing everybody's WebSockets.

use std::collections::HashMap;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use http::Method;
use nix::sys::socket::Shutdown;
use pingora::protocols::l4::ext::get_socket_cookie;
use pingora::upstreams::peer::{Tracer, Tracing};
use prometheus::IntCounter;

use crate::admission::Route;
use crate::directory::{ChangeTarget, Directory, Identity};
use crate::policy;
use crate::session::Sessions;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One upstream connection the proxy opened, from its connect until pingora drops it.
#[derive(Debug, Default)]
pub struct Conn {
    state: Mutex<ConnState>,
}

#[derive(Debug, Default)]
struct ConnState {
    /// Its socket, known once the first request on it reached `connected_to_upstream`.
    fd: Option<RawFd>,
    /// Its socket cookie, read the first time a stream used the connection.
    cookie: Option<u64>,
    /// pingora is dropping the connection: its fd is closed next and may then name
    /// anything.
    closed: bool,
}

impl Conn {
    /// Shut the socket down if the connection is still open and its fd still has
    /// `cookie`. Holds the lock across the `shutdown`, so the connection cannot be closed
    /// (and its number reused) in between. Whether it was shut down.
    fn shutdown(&self, cookie: Option<u64>) -> bool {
        let state = lock(&self.state);
        let Some(fd) = state.fd.filter(|_| !state.closed) else {
            return false;
        };
        if let Some(expected) = cookie {
            if get_socket_cookie(fd).ok() != Some(expected) {
                tracing::warn!("stream close skipped: fd {fd} is no longer the stream's socket");
                return false;
            }
        }
        match nix::sys::socket::shutdown(fd, Shutdown::Both) {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!("stream close: shutdown of fd {fd}: {e}");
                false
            }
        }
    }
}

/// Travels with an upstream connection (pingora `PeerOptions::tracer`) to learn when it
/// is dropped, before its socket is closed.
#[derive(Clone)]
pub struct ConnTracer {
    conn: Arc<Conn>,
    streams: Arc<Streams>,
}

impl std::fmt::Debug for ConnTracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnTracer")
            .field("conn", &self.conn)
            .finish()
    }
}

impl Tracing for ConnTracer {
    fn on_connected(&self) {}

    fn on_disconnected(&self) {
        self.streams.disconnected(&self.conn);
    }

    fn boxed_clone(&self) -> Box<dyn Tracing> {
        Box::new(self.clone())
    }
}

/// Who holds a stream, and what let them in: what a directory change re-checks.
#[derive(Debug)]
pub struct Holder {
    pub user_id: String,
    pub org_id: String,
    /// The `id_hash` of the session that authenticated the request; `None` for a bearer
    /// token.
    pub session: Option<String>,
    /// The route decision to repeat; `None` re-checks the user and session only.
    pub request: Option<RouteRequest>,
}

/// The parts of a request its route's policy decided on.
#[derive(Debug)]
pub struct RouteRequest {
    /// The route as configured when the request started (a reload does not change the
    /// rules of a request in flight).
    pub route: Arc<Route>,
    pub method: Method,
    pub account: Option<String>,
    /// How the caller had authenticated when the stream opened.
    pub strength: policy::AuthStrength,
}

impl RouteRequest {
    fn allows(&self, identity: &Identity, now: i64) -> bool {
        let request = policy::Request {
            method: &self.method,
            account: self.account.as_deref(),
            now,
            strength: self.strength,
        };
        policy::enforce(&self.route.config, &request, Some(identity)).lets_through()
    }
}

impl Holder {
    /// Whether the stream may stay open: the user is still usable, the session still
    /// exists, the route still allows the request. A directory error counts as "no" (fail
    /// closed: the client reconnects and is checked like any request).
    async fn still_allowed(&self, directory: &Directory, sessions: &Sessions) -> bool {
        let entry = match directory.identity(&self.user_id).await {
            Ok(Some(entry)) => entry,
            Ok(None) => return false,
            Err(e) => {
                tracing::warn!("stream re-check: directory lookup failed ({e}); closing");
                return false;
            }
        };
        if !entry.identity.is_usable() {
            return false;
        }
        if let Some(id_hash) = &self.session {
            match sessions.exists(id_hash).await {
                Ok(true) => {}
                Ok(false) => return false,
                Err(e) => {
                    tracing::warn!("stream re-check: session lookup failed ({e}); closing");
                    return false;
                }
            }
        }
        match &self.request {
            Some(request) => request.allows(&entry.identity, sessions.clock().now()),
            None => true,
        }
    }

    fn touched_by(&self, target: &ChangeTarget) -> bool {
        match target {
            ChangeTarget::User(id) => *id == self.user_id,
            ChangeTarget::Org(id) => *id == self.org_id,
            ChangeTarget::All => true,
        }
    }
}

/// A tracked stream.
struct Live {
    holder: Arc<Holder>,
    conn: Arc<Conn>,
    cookie: Option<u64>,
}

/// The upstream connections of this process and the streams running on them.
pub struct Streams {
    /// Open upstream connections by fd (for requests that reuse a pooled one).
    conns: Mutex<HashMap<RawFd, Arc<Conn>>>,
    /// Tracked streams by id.
    live: Mutex<HashMap<u64, Live>>,
    next: AtomicU64,
    closed: IntCounter,
}

impl Streams {
    /// `closed` counts the streams cut (`partnergate_streams_closed_total`).
    pub fn new(closed: IntCounter) -> Arc<Streams> {
        Arc::new(Streams {
            conns: Mutex::new(HashMap::new()),
            live: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
            closed,
        })
    }

    /// For the peer of one connection attempt: the tracer to put in its options, and the
    /// [`Conn`] it describes if pingora opens a new connection for the attempt.
    pub fn tracer(self: &Arc<Self>) -> (Arc<Conn>, Tracer) {
        let conn = Arc::new(Conn::default());
        let tracer = ConnTracer {
            conn: conn.clone(),
            streams: self.clone(),
        };
        (conn, Tracer(Box::new(tracer)))
    }

    /// A new connection's first request is on `fd`: remember it, for requests that reuse
    /// the connection.
    pub fn opened(&self, fd: RawFd, conn: &Arc<Conn>) {
        let mut state = lock(&conn.state);
        if state.closed {
            return;
        }
        state.fd = Some(fd);
        lock(&self.conns).insert(fd, conn.clone());
    }

    /// The open connection on `fd` (a request reusing a pooled connection).
    pub fn conn(&self, fd: RawFd) -> Option<Arc<Conn>> {
        lock(&self.conns).get(&fd).cloned()
    }

    /// pingora drops `conn`; its socket is closed right after this returns.
    fn disconnected(&self, conn: &Arc<Conn>) {
        let fd = {
            let mut state = lock(&conn.state);
            state.closed = true;
            state.fd.take()
        };
        if let Some(fd) = fd {
            let mut conns = lock(&self.conns);
            if conns.get(&fd).is_some_and(|c| Arc::ptr_eq(c, conn)) {
                conns.remove(&fd);
            }
        }
    }

    /// Track a stream on `conn` (which the request is using now). `None` when the
    /// connection is already closing. Dropping the returned guard forgets the stream.
    pub fn track(self: &Arc<Self>, conn: Arc<Conn>, holder: Holder) -> Option<Tracked> {
        let cookie = {
            let mut state = lock(&conn.state);
            let fd = state.fd.filter(|_| !state.closed)?;
            if state.cookie.is_none() {
                // 0 is what pingora answers where there are no socket cookies.
                state.cookie = get_socket_cookie(fd).ok().filter(|c| *c != 0);
            }
            state.cookie
        };
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let live = Live {
            holder: Arc::new(holder),
            conn,
            cookie,
        };
        lock(&self.live).insert(id, live);
        Some(Tracked {
            id,
            streams: self.clone(),
        })
    }

    /// Streams in flight.
    pub fn len(&self) -> usize {
        lock(&self.live).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The streams any of `targets` touches.
    fn holders(&self, targets: &[ChangeTarget]) -> Vec<(u64, Arc<Holder>)> {
        lock(&self.live)
            .iter()
            .filter(|(_, live)| targets.iter().any(|t| live.holder.touched_by(t)))
            .map(|(id, live)| (*id, live.holder.clone()))
            .collect()
    }

    /// Close stream `id` if it is still tracked: shut its upstream socket down. Whether
    /// it was.
    fn cut(&self, id: u64) -> bool {
        let Some(live) = lock(&self.live).remove(&id) else {
            return false;
        };
        let done = live.conn.shutdown(live.cookie);
        if done {
            self.closed.inc();
        }
        done
    }

    /// Re-check the streams `targets` touch (after the caches dropped what the changes
    /// named) and cut those no longer allowed. Returns how many were cut.
    pub async fn revoke(
        &self,
        targets: &[ChangeTarget],
        directory: &Directory,
        sessions: &Sessions,
    ) -> usize {
        if targets.is_empty() {
            return 0;
        }
        let mut cut = 0;
        for (id, holder) in self.holders(targets) {
            if !holder.still_allowed(directory, sessions).await && self.cut(id) {
                tracing::info!(
                    user_id = %holder.user_id,
                    org = %holder.org_id,
                    "closed an open stream: its user is no longer allowed"
                );
                cut += 1;
            }
        }
        cut
    }
}

/// A tracked stream; dropping it (the request ended) forgets the stream.
pub struct Tracked {
    id: u64,
    streams: Arc<Streams>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        lock(&self.streams.live).remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    use super::*;

    /// A connected pair: (client, server side).
    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        (client, server)
    }

    /// Whether the server side sees the client's end of stream (else it gets `probe`).
    fn sees_eof(client: &mut TcpStream, server: &mut TcpStream) -> bool {
        let _ = client.write_all(b"x");
        let mut buf = [0u8; 1];
        match server.read(&mut buf) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => panic!("read: {e}"),
        }
    }

    fn holder(user: &str, org: &str) -> Holder {
        Holder {
            user_id: user.into(),
            org_id: org.into(),
            session: None,
            request: None,
        }
    }

    fn registry() -> (Arc<Streams>, IntCounter) {
        let closed = IntCounter::new("closed", "test").expect("counter");
        (Streams::new(closed.clone()), closed)
    }

    /// A connection as the proxy sees it: a tracer's `Conn`, opened on `fd`.
    fn open(streams: &Arc<Streams>, fd: RawFd) -> Arc<Conn> {
        let (conn, _tracer) = streams.tracer();
        streams.opened(fd, &conn);
        conn
    }

    #[test]
    fn streams_are_selected_by_user_org_or_all_and_forgotten_when_done() {
        let (streams, _) = registry();
        let sockets: Vec<_> = (0..3).map(|_| pair()).collect();
        let conns: Vec<_> = sockets
            .iter()
            .map(|(c, _)| open(&streams, c.as_raw_fd()))
            .collect();
        let bob = streams
            .track(conns[0].clone(), holder("bob", "acme"))
            .expect("bob");
        let alice = streams
            .track(conns[1].clone(), holder("alice", "acme"))
            .expect("alice");
        let carol = streams
            .track(conns[2].clone(), holder("carol", "brightpath"))
            .expect("carol");
        assert_eq!(streams.len(), 3);
        let users = |targets: &[ChangeTarget]| {
            let mut v: Vec<String> = streams
                .holders(targets)
                .into_iter()
                .map(|(_, h)| h.user_id.clone())
                .collect();
            v.sort();
            v
        };
        assert_eq!(users(&[ChangeTarget::User("bob".into())]), ["bob"]);
        assert_eq!(users(&[ChangeTarget::Org("acme".into())]), ["alice", "bob"]);
        assert_eq!(
            users(&[
                ChangeTarget::User("carol".into()),
                ChangeTarget::User("nobody".into())
            ]),
            ["carol"]
        );
        assert_eq!(users(&[ChangeTarget::All]), ["alice", "bob", "carol"]);
        assert!(users(&[ChangeTarget::Org("globex".into())]).is_empty());
        assert!(users(&[]).is_empty());

        drop(alice);
        assert_eq!(users(&[ChangeTarget::Org("acme".into())]), ["bob"]);
        drop((bob, carol));
        assert!(streams.is_empty());
    }

    #[test]
    fn a_cut_shuts_the_upstream_socket_down_once() {
        let (streams, closed) = registry();
        let (mut client, mut server) = pair();
        let conn = open(&streams, client.as_raw_fd());
        let (mut other_client, mut other_server) = pair();
        let other = open(&streams, other_client.as_raw_fd());
        let bob = streams.track(conn, holder("bob", "acme")).expect("bob");
        let _carol = streams
            .track(other, holder("carol", "brightpath"))
            .expect("carol");

        let (id, _) = streams.holders(&[ChangeTarget::User("bob".into())])[0];
        assert!(streams.cut(id));
        assert!(
            sees_eof(&mut client, &mut server),
            "bob's socket is shut down"
        );
        assert_eq!(closed.get(), 1);
        assert!(!streams.cut(id), "already cut");
        assert_eq!(closed.get(), 1);
        drop(bob); // the request ends afterwards: nothing left to forget
        assert_eq!(streams.len(), 1);
        assert!(
            !sees_eof(&mut other_client, &mut other_server),
            "carol's socket still works"
        );
    }

    #[test]
    fn a_stale_cookie_or_a_closed_connection_is_never_shut_down() {
        let (streams, closed) = registry();
        let (mut client, mut server) = pair();
        let fd = client.as_raw_fd();
        let conn = open(&streams, fd);
        let cookie = get_socket_cookie(fd).expect("SO_COOKIE");
        assert_ne!(cookie, 0, "Linux socket cookies");
        let bob = streams
            .track(conn.clone(), holder("bob", "acme"))
            .expect("bob");
        // The fd now names another socket than the one registered (its number reused):
        // the cookie read at registration does not match, nothing is shut down.
        lock(&streams.live)
            .get_mut(&bob.id)
            .expect("tracked")
            .cookie = Some(cookie + 1);
        assert!(!streams.cut(bob.id));
        assert!(!sees_eof(&mut client, &mut server), "socket untouched");
        assert_eq!(closed.get(), 0);

        // pingora drops the connection (on_disconnected, before the close): a stream
        // still registered on it is not shut down, and the fd is forgotten.
        let alice = streams
            .track(conn.clone(), holder("alice", "acme"))
            .expect("alice");
        streams.disconnected(&conn);
        assert!(streams.conn(fd).is_none());
        assert!(!streams.cut(alice.id));
        assert!(!sees_eof(&mut client, &mut server), "socket untouched");
        assert!(
            streams.track(conn, holder("dora", "acme")).is_none(),
            "no new stream on a closed connection"
        );
        assert_eq!(closed.get(), 0);
    }

    #[test]
    fn reused_connections_are_found_by_fd_until_dropped() {
        let (streams, _) = registry();
        let (client, _server) = pair();
        let fd = client.as_raw_fd();
        let (conn, tracer) = streams.tracer();
        assert!(streams.conn(fd).is_none());
        streams.opened(fd, &conn);
        let found = streams.conn(fd).expect("open connection");
        assert!(Arc::ptr_eq(&found, &conn));
        // The tracer pingora keeps in the connection: its clone reports the drop.
        let kept = tracer.clone();
        drop(tracer);
        assert!(
            streams.conn(fd).is_some(),
            "a dropped peer is no disconnect"
        );
        kept.0.on_disconnected();
        assert!(streams.conn(fd).is_none());
        // A later connection on the same fd number is a new entry; the old tracer's
        // disconnect (if it came late) does not remove it.
        let (newer, _t) = streams.tracer();
        streams.opened(fd, &newer);
        kept.0.on_disconnected();
        assert!(Arc::ptr_eq(&streams.conn(fd).expect("newer"), &newer));
    }
}
