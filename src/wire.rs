//! The client connection below HTTP: what pingora's parsers cannot tell afterwards.
//!
//! Every public connection is wrapped in a `HeadStream` before pingora reads from it:
//!
//! - For HTTP/1.x it keeps a copy of each request head exactly as it arrived, because
//!   pingora rewrites some heads while parsing them (it percent-encodes a space in the
//!   request-target and drops `Content-Length` next to `Transfer-Encoding`). The proxy
//!   checks the copy with [`check_head`] before anything is forwarded.
//! - It bounds how long a head may take once its first byte arrived (HTTP/1.x), and how
//!   long an HTTP/2 client may take to send its connection preface. pingora only has a
//!   timeout per read, so a client trickling one byte at a time held a connection for as
//!   long as it liked.
//!
//! HTTP/2 connections with no request in flight (which covers a HEADERS frame that never
//! completes) are closed by pingora's own idle timeout, set from the same value in
//! [`proxy_service`]. [`stream_reset`] tells the proxy that an HTTP/2 stream is already
//! gone (the client reset it, or h2 refused its framing) before it is forwarded.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt;
use pingora::apps::{HttpPersistentSettings, HttpServerApp, HttpServerOptions, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::tls::TlsRef;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use pingora::protocols::{Stream, IO};
use pingora::proxy::{HttpProxy, ProxyHttp};
use pingora::server::configuration::ServerConf;
use pingora::server::ShutdownWatch;
use pingora::services::listening::Service;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::normalize::strict::{self, HeadEnd, Strictness};

/// The most of a head that is copied, as a bound of last resort: pingora stops reading a
/// head past 1 MiB (and the proxy refuses one over `server.max_request_header_bytes`), so
/// every head pingora parses is copied whole.
const HEAD_COPY_LIMIT: usize = 4 * 1_048_576;

/// How long pingora lets an idle HTTP/1.1 connection wait for its next request, as in
/// pingora's own HTTP/1 loop.
const KEEPALIVE_SECS: u64 = 60;

/// The length of the HTTP/2 client connection preface (`PRI * HTTP/2.0…`).
const H2_PREFACE_LEN: usize = 24;

/// The public proxy service: pingora's HTTP proxy for `gateway`, with every connection
/// guarded as described in the module documentation.
pub fn proxy_service<SV>(
    conf: &Arc<ServerConf>,
    gateway: SV,
    name: &str,
    head_timeout: Duration,
) -> Service<Guarded<HttpProxy<SV>>>
where
    SV: ProxyHttp + Send + Sync + 'static,
    SV::CTX: Send + Sync,
{
    let mut proxy = pingora::proxy::http_proxy(conf, gateway);
    let mut options = HttpServerOptions::default();
    options.h2_idle_timeout = Some(head_timeout);
    proxy.server_options = Some(options);
    Service::new(
        name.to_string(),
        Guarded {
            app: Arc::new(proxy),
            head_timeout,
        },
    )
}

/// The HTTP/1.x request head of `session` as the client sent it, held to
/// [`strict::check_head`]. Other protocols (HTTP/2 has no text head) pass.
pub fn check_head(session: &ServerSession) -> Result<(), Strictness> {
    let Some(stream) = session.stream() else {
        return Ok(());
    };
    match (**stream).as_any().downcast_ref::<HeadStream>() {
        Some(guard) => strict::check_head(&guard.head),
        None => Ok(()),
    }
}

/// Whether `session` is an HTTP/2 stream that has already ended: reset by the client
/// (as in a rapid-reset attack, where each request is cancelled right after it is sent)
/// or by h2 for broken framing (a `content-length` the DATA frames contradict). Such a
/// request has nobody waiting for its answer and must not be forwarded.
pub fn stream_reset(session: &mut ServerSession) -> bool {
    session
        .watch_h2_stream_close()
        .and_then(|closed| closed.now_or_never())
        .is_some()
}

/// A pingora application that wraps each accepted connection in a `HeadStream` and
/// hands it to `app`. It runs the HTTP/1.x keep-alive loop itself, like pingora's own
/// glue for [`HttpServerApp`], so that the copy of the head starts afresh before each
/// request on the connection. HTTP/1.1 pipelining stays off (pingora's default): a
/// connection with bytes read past a request is not reused, so every head is read, and
/// copied, by the session that serves it.
pub struct Guarded<A> {
    app: Arc<A>,
    head_timeout: Duration,
}

#[async_trait]
impl<A> ServerApp for Guarded<A>
where
    A: HttpServerApp + Send + Sync + 'static,
{
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            let guarded = HeadStream::h2_preface(stream, self.head_timeout);
            return self.app.process_new(Box::new(guarded), shutdown).await;
        }
        if self.app.server_options().is_some_and(|o| o.h2c) {
            // Plain-text HTTP/2 is not offered by the gateway; should it ever be, pingora's
            // own loop tells it from HTTP/1.
            return self.app.process_new(stream, shutdown).await;
        }
        let mut stream: Stream = Box::new(HeadStream::h1(stream, self.head_timeout));
        let mut persistent: Option<HttpPersistentSettings> = None;
        loop {
            let mut session = ServerSession::new_http1(stream);
            match persistent {
                Some(settings) => settings.apply_to_session(&mut session),
                None => {
                    let keepalive = (!*shutdown.borrow()).then_some(KEEPALIVE_SECS);
                    session.set_keepalive(keepalive);
                    session.set_keepalive_reuses_remaining(
                        self.app
                            .server_options()
                            .and_then(|o| o.keepalive_request_limit),
                    );
                }
            }
            let (reused, settings) = self
                .app
                .process_new_http(session, shutdown)
                .await?
                .consume();
            stream = HeadStream::next_request(reused)?;
            persistent = settings;
        }
    }

    async fn cleanup(&self) {
        self.app.cleanup().await;
    }
}

/// What the connection is reading now.
#[derive(Debug)]
enum Phase {
    /// An HTTP/1.x request head: copied, and timed from its first byte.
    Head,
    /// The HTTP/2 preface: timed from the start of the connection; bytes still missing.
    Preface(usize),
    /// Anything else: passed through untouched.
    Rest,
}

/// A client connection that copies request heads and times them (see the module
/// documentation). Everything but reading is passed straight to the inner stream.
struct HeadStream {
    inner: Stream,
    phase: Phase,
    /// The current request head, as received (HTTP/1.x only).
    head: Vec<u8>,
    end: HeadEnd,
    timeout: Duration,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl HeadStream {
    fn h1(inner: Stream, timeout: Duration) -> HeadStream {
        HeadStream {
            inner,
            phase: Phase::Head,
            head: Vec::new(),
            end: HeadEnd::new(),
            timeout,
            deadline: None,
        }
    }

    fn h2_preface(inner: Stream, timeout: Duration) -> HeadStream {
        HeadStream {
            phase: Phase::Preface(H2_PREFACE_LEN),
            deadline: Some(Box::pin(tokio::time::sleep(timeout))),
            ..HeadStream::h1(inner, timeout)
        }
    }

    /// The connection given back by a finished HTTP/1.x session, made ready for the
    /// next request head. `None` (close) if it is not a `HeadStream`, which cannot happen.
    fn next_request(stream: Stream) -> Option<Stream> {
        let mut guard = stream.into_any().downcast::<HeadStream>().ok()?;
        guard.phase = Phase::Head;
        guard.head.clear();
        guard.end = HeadEnd::new();
        guard.deadline = None;
        Some(guard)
    }

    /// Account for bytes just read.
    fn observe(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        match &mut self.phase {
            Phase::Head => {
                let end = self.end.feed(bytes);
                let part = &bytes[..end.unwrap_or(bytes.len())];
                let room = HEAD_COPY_LIMIT.saturating_sub(self.head.len());
                self.head.extend_from_slice(&part[..part.len().min(room)]);
                if end.is_some() {
                    self.done();
                } else if self.deadline.is_none() {
                    // The head did not come whole with its first bytes: time the rest (a
                    // head that does, the common case, costs no timer).
                    self.deadline = Some(Box::pin(tokio::time::sleep(self.timeout)));
                }
            }
            Phase::Preface(missing) => {
                *missing = missing.saturating_sub(bytes.len());
                if *missing == 0 {
                    self.done();
                }
            }
            Phase::Rest => {}
        }
    }

    fn done(&mut self) {
        self.phase = Phase::Rest;
        self.deadline = None;
    }
}

impl AsyncRead for HeadStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if let Some(deadline) = this.deadline.as_mut() {
            if deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "request head not received in time",
                )));
            }
        }
        let before = buf.filled().len();
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = read {
            let (_, new) = buf.filled().split_at(before);
            this.observe(new);
        }
        read
    }
}

impl AsyncWrite for HeadStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for HeadStream {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await;
    }
}

impl UniqueID for HeadStream {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for HeadStream {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for HeadStream {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for HeadStream {
    fn get_proxy_digest(&self) -> Option<Arc<pingora::protocols::raw_connect::ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: pingora::protocols::raw_connect::ProxyDigest) {
        self.inner.set_proxy_digest(digest);
    }
}

impl GetSocketDigest for HeadStream {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest);
    }
}

#[async_trait]
impl Peek for HeadStream {
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

impl std::fmt::Debug for HeadStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeadStream")
            .field("inner", &self.inner)
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

// The wrapper must stay a complete pingora stream.
const _: fn() = || {
    fn is_io<T: IO>() {}
    is_io::<HeadStream>();
};
