//! The access log: one JSON object per line, one line per request (fields in
//! docs/reference.md, Access log).
//!
//! The request path only does a `try_send` on a bounded channel; one writer thread
//! serialises, batches and writes. A full queue drops the line and counts it in
//! `partnergate_access_log_dropped_total`; a request never waits for the log.

use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderValue;
use prometheus::IntCounter;
use tokio::sync::{mpsc, oneshot};

use crate::request_id::RequestId;

/// One request, as written to the access log: cheap to build on the request path (ids,
/// names and header values are shared, not copied); the writer thread formats it. Every
/// field is always present in the JSON line (`None` is `null`).
#[derive(Debug, Clone)]
pub struct AccessRecord {
    pub ts: SystemTime,
    pub request_id: RequestId,
    pub client_ip: Option<IpAddr>,
    pub method: http::Method,
    pub host: String,
    /// The normalised path, never the query string.
    pub path: String,
    pub status: u16,
    pub bytes_sent: u64,
    pub duration_ms: f64,
    pub upstream_ms: Option<f64>,
    pub route: Option<Arc<str>>,
    pub upstream: Option<Arc<str>>,
    pub user: Option<Text>,
    pub org: Option<Text>,
    /// allow | deny | shadow_deny | unauthenticated | ratelimited | error
    pub decision: &'static str,
    pub reason: Option<&'static str>,
    /// Who asked: `proxy` (a request through the gateway), or the forward-auth mode
    /// (`nginx`, `envoy`, `traefik`) of a check another proxy made.
    pub mode: &'static str,
    /// Truncated to [`USER_AGENT_MAX`] bytes when written.
    pub user_agent: Option<HeaderValue>,
}

/// Longest user agent written, in bytes.
pub const USER_AGENT_MAX: usize = 256;

/// Text for the log that is usually already held elsewhere: a header value of the cached
/// identity (shared), or a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Text {
    Shared(HeaderValue),
    Owned(String),
}

impl Text {
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Text::Shared(v) => v.as_bytes(),
            Text::Owned(s) => s.as_bytes(),
        }
    }
}

impl AccessRecord {
    /// The JSON line (without the newline), appended to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        out.extend_from_slice(b"\"ts\":\"");
        write_rfc3339_ms(out, self.ts);
        out.extend_from_slice(b"\",\"request_id\":");
        json_str(out, self.request_id.as_str().as_bytes());
        out.extend_from_slice(b",\"client_ip\":");
        out.push(b'"');
        match self.client_ip {
            Some(IpAddr::V4(v4)) => {
                for (i, octet) in v4.octets().iter().enumerate() {
                    if i > 0 {
                        out.push(b'.');
                    }
                    out.extend_from_slice(itoa::Buffer::new().format(*octet).as_bytes());
                }
            }
            Some(ip) => {
                use std::io::Write;
                let _ = write!(out, "{ip}");
            }
            None => {}
        }
        out.push(b'"');
        field_str(out, "method", Some(self.method.as_str().as_bytes()));
        field_str(out, "host", Some(self.host.as_bytes()));
        field_str(out, "path", Some(self.path.as_bytes()));
        field_int(out, "status", u64::from(self.status));
        field_int(out, "bytes_sent", self.bytes_sent);
        field_millis(out, "duration_ms", Some(self.duration_ms));
        field_millis(out, "upstream_ms", self.upstream_ms);
        field_str(out, "route", self.route.as_deref().map(str::as_bytes));
        field_str(out, "upstream", self.upstream.as_deref().map(str::as_bytes));
        field_str(out, "user", self.user.as_ref().map(Text::as_bytes));
        field_str(out, "org", self.org.as_ref().map(Text::as_bytes));
        field_str(out, "decision", Some(self.decision.as_bytes()));
        field_str(out, "reason", self.reason.map(str::as_bytes));
        field_str(out, "mode", Some(self.mode.as_bytes()));
        let ua = self.user_agent.as_ref().map(|v| {
            let b = v.as_bytes();
            &b[..b.len().min(USER_AGENT_MAX)]
        });
        field_str(out, "user_agent", ua);
        out.push(b'}');
    }
}

fn key(out: &mut Vec<u8>, name: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

fn field_str(out: &mut Vec<u8>, name: &str, value: Option<&[u8]>) {
    key(out, name);
    match value {
        Some(v) => json_str(out, v),
        None => out.extend_from_slice(b"null"),
    }
}

fn field_int(out: &mut Vec<u8>, name: &str, value: u64) {
    key(out, name);
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// Milliseconds with at most 3 decimals (rounded), so the line never carries float noise.
fn field_millis(out: &mut Vec<u8>, name: &str, value: Option<f64>) {
    key(out, name);
    let Some(ms) = value.filter(|v| v.is_finite()) else {
        out.extend_from_slice(b"null");
        return;
    };
    let micros = (ms * 1000.0).round();
    if !(0.0..=9.0e15).contains(&micros) {
        out.extend_from_slice(b"0");
        return;
    }
    let micros = micros as u64;
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(micros / 1000).as_bytes());
    let frac = micros % 1000;
    if frac != 0 {
        let digits = [
            b'0' + (frac / 100) as u8,
            b'0' + (frac / 10 % 10) as u8,
            b'0' + (frac % 10) as u8,
        ];
        let len = if frac % 100 == 0 {
            1
        } else if frac % 10 == 0 {
            2
        } else {
            3
        };
        out.push(b'.');
        out.extend_from_slice(&digits[..len]);
    }
}

/// A JSON string: quotes, backslashes and control characters escaped; bytes that are not
/// UTF-8 (a header value may hold them) replaced by U+FFFD.
fn json_str(out: &mut Vec<u8>, value: &[u8]) {
    match std::str::from_utf8(value) {
        Ok(s) => escaped(out, s),
        Err(_) => escaped(out, &String::from_utf8_lossy(value)),
    }
}

fn escaped(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.push(b'"');
    let mut plain = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f | 0x7f => {
                out.extend_from_slice(&bytes[plain..i]);
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
                plain = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[plain..i]);
        out.extend_from_slice(escape);
        plain = i + 1;
    }
    out.extend_from_slice(&bytes[plain..]);
    out.push(b'"');
}

/// `2026-11-23T07:54:01.123Z`: RFC 3339, UTC, milliseconds (truncated).
pub fn rfc3339_ms(t: SystemTime) -> String {
    let mut out = Vec::with_capacity(24);
    write_rfc3339_ms(&mut out, t);
    String::from_utf8(out).unwrap_or_default()
}

fn write_rfc3339_ms(out: &mut Vec<u8>, t: SystemTime) {
    let millis: i64 = match t.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => {
            let m =
                i64::try_from(before.duration().as_nanos().div_ceil(1_000_000)).unwrap_or(i64::MAX);
            -m
        }
    };
    let secs = millis.div_euclid(1000);
    let ms = millis.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let two = |out: &mut Vec<u8>, v: i64| {
        out.push(b'0' + (v / 10) as u8);
        out.push(b'0' + (v % 10) as u8);
    };
    let year = y.clamp(0, 9999);
    out.extend_from_slice(&[
        b'0' + (year / 1000) as u8,
        b'0' + (year / 100 % 10) as u8,
        b'0' + (year / 10 % 10) as u8,
        b'0' + (year % 10) as u8,
    ]);
    out.push(b'-');
    two(out, m);
    out.push(b'-');
    two(out, d);
    out.push(b'T');
    two(out, rem / 3600);
    out.push(b':');
    two(out, rem / 60 % 60);
    out.push(b':');
    two(out, rem % 60);
    out.push(b'.');
    out.extend_from_slice(&[
        b'0' + (ms / 100) as u8,
        b'0' + (ms / 10 % 10) as u8,
        b'0' + (ms % 10) as u8,
    ]);
    out.push(b'Z');
}

/// (year, month, day) of a day count since 1970-01-01 (the proleptic Gregorian calendar;
/// the algorithm of Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Where the writer puts the lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogTarget {
    Stdout,
    /// Appended to (created if missing; the directory must exist), reopened on request.
    File(PathBuf),
}

// A record is the channel's payload on the hot path; boxing it would add an
// allocation per request to save a few hundred bytes per queue slot.
#[allow(clippy::large_enum_variant)]
enum Message {
    Line(AccessRecord),
    Flush(oneshot::Sender<()>),
}

/// Create the request-path handle and the writer that must be spawned to drain it.
/// `capacity` lines may wait; beyond that they are dropped and counted in `dropped`.
pub fn channel(
    target: AccessLogTarget,
    capacity: usize,
    dropped: IntCounter,
) -> (AccessLog, AccessLogWriter) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let reopen = Arc::new(Reopen {
        requested: AtomicBool::new(false),
    });
    let log = AccessLog {
        tx,
        reopen: reopen.clone(),
        drops: Arc::new(Drops {
            counter: dropped.clone(),
            warned: AtomicBool::new(false),
        }),
    };
    let writer = AccessLogWriter {
        target,
        rx,
        reopen,
        dropped,
    };
    (log, writer)
}

/// The request-path side: cheap to clone, never blocks.
#[derive(Clone)]
pub struct AccessLog {
    tx: mpsc::Sender<Message>,
    reopen: Arc<Reopen>,
    drops: Arc<Drops>,
}

/// A reopen request: the flag orders it before later lines; an idle writer sees it at
/// its next tick.
struct Reopen {
    requested: AtomicBool,
}

struct Drops {
    counter: IntCounter,
    warned: AtomicBool,
}

impl Drops {
    fn count(&self, why: &str) {
        self.counter.inc();
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "access log {why}: dropping lines, counted in partnergate_access_log_dropped_total"
            );
        }
    }
}

impl AccessLog {
    /// Queue one line; if the queue is full (or the writer is gone) count it as dropped.
    pub fn log(&self, rec: AccessRecord) {
        match self.tx.try_send(Message::Line(rec)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => self.drops.count("queue full"),
            Err(mpsc::error::TrySendError::Closed(_)) => self.drops.count("writer stopped"),
        }
    }

    /// Ask the writer to reopen its file (after logrotate renamed it); every line
    /// logged after this returns goes to the new file. No-op for stdout.
    pub fn reopen(&self) {
        self.reopen.requested.store(true, Ordering::Release);
    }

    /// Resolves once every line queued before this call is written and flushed, or at
    /// once if the writer has stopped.
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            let _ = written.await;
        }
    }
}

/// The single writer; see [`AccessLogWriter::run`].
pub struct AccessLogWriter {
    target: AccessLogTarget,
    rx: mpsc::Receiver<Message>,
    reopen: Arc<Reopen>,
    dropped: IntCounter,
}

type Sink = std::io::BufWriter<Box<dyn Write + Send>>;

const WRITE_BUFFER: usize = 64 * 1024;
/// For a file the gateway creates: lines name users and client addresses.
const FILE_MODE: u32 = 0o640;
/// How often the writer wakes to drain the queue. The request path never wakes it
/// (a `try_send` to a receiver that is not parked costs no system call), so under load
/// lines go out in batches; a line reaches the file at most one tick after its request.
const TICK: Duration = Duration::from_millis(20);

impl AccessLogWriter {
    /// Write lines on a dedicated thread until every [`AccessLog`] handle is dropped,
    /// then flush and return. Fails only if the file cannot be opened at start; later
    /// write errors are logged (without the line) and the lines counted as dropped.
    pub async fn run(self) -> std::io::Result<()> {
        let out = Output::open(&self.target)?;
        let (done_tx, done_rx) = oneshot::channel();
        std::thread::Builder::new()
            .name("partnergate-accesslog".into())
            .spawn(move || {
                self.write_until_closed(out);
                let _ = done_tx.send(());
            })?;
        let _ = done_rx.await;
        Ok(())
    }

    fn write_until_closed(mut self, mut out: Output) {
        loop {
            let mut wrote = false;
            loop {
                match self.rx.try_recv() {
                    Ok(message) => {
                        self.handle(&mut out, message);
                        wrote = true;
                    }
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        out.flush();
                        return;
                    }
                }
            }
            self.reopen_if_requested(&mut out);
            if wrote {
                out.flush();
            }
            std::thread::sleep(TICK);
        }
    }

    fn handle(&mut self, out: &mut Output, message: Message) {
        self.reopen_if_requested(out);
        match message {
            Message::Line(rec) => {
                if !out.write(&rec) {
                    self.dropped.inc();
                }
            }
            Message::Flush(done) => {
                out.flush();
                let _ = done.send(());
            }
        }
    }

    fn reopen_if_requested(&self, out: &mut Output) {
        if self.reopen.requested.swap(false, Ordering::AcqRel) {
            out.reopen(&self.target);
        }
    }
}

/// The open sink, a reusable line buffer, and whether the last write failed (so a
/// broken disk gives one error message per outage, not one per line).
struct Output {
    sink: Sink,
    line: Vec<u8>,
    failing: bool,
}

impl Output {
    fn open(target: &AccessLogTarget) -> std::io::Result<Self> {
        Ok(Output {
            sink: open_sink(target)?,
            line: Vec::with_capacity(512),
            failing: false,
        })
    }

    /// Start a new file at the configured path; keep the old one if that fails.
    fn reopen(&mut self, target: &AccessLogTarget) {
        if *target == AccessLogTarget::Stdout {
            return;
        }
        self.flush();
        match open_sink(target) {
            Ok(sink) => {
                self.sink = sink;
                self.failing = false;
                tracing::info!("access log reopened");
            }
            Err(e) => {
                tracing::error!("access log reopen failed, still writing to the old file: {e}")
            }
        }
    }

    fn write(&mut self, rec: &AccessRecord) -> bool {
        self.line.clear();
        rec.write_json(&mut self.line);
        self.line.push(b'\n');
        let result = self.sink.write_all(&self.line);
        self.outcome("write", result)
    }

    fn flush(&mut self) {
        let result = self.sink.flush();
        self.outcome("flush", result);
    }

    fn outcome(&mut self, what: &str, result: std::io::Result<()>) -> bool {
        match result {
            Ok(()) => {
                if std::mem::take(&mut self.failing) {
                    tracing::info!("access log writes recovered");
                }
                true
            }
            Err(e) => {
                if !std::mem::replace(&mut self.failing, true) {
                    tracing::error!("access log {what} failed: {e}");
                }
                false
            }
        }
    }
}

fn open_sink(target: &AccessLogTarget) -> std::io::Result<Sink> {
    let inner: Box<dyn Write + Send> = match target {
        AccessLogTarget::Stdout => Box::new(std::io::stdout()),
        AccessLogTarget::File(path) => {
            let file = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .mode(FILE_MODE)
                .open(path)
                .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            Box::new(file)
        }
    };
    Ok(std::io::BufWriter::with_capacity(WRITE_BUFFER, inner))
}

#[cfg(test)]
mod tests;
