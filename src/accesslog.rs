//! The access log (CONTRACT §5): one JSON object per line, one line per request.
//!
//! The request path only does a `try_send` on a bounded channel; one writer thread
//! serialises, batches and writes. A full queue drops the line and counts it in
//! `partnergate_access_log_dropped_total`; a request never waits for the log.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::IntCounter;
use serde::{Serialize, Serializer};
use tokio::sync::{mpsc, oneshot};

/// One request, as written to the access log. Every field is always present in the
/// JSON line (`None` is `null`).
#[derive(Debug, Clone, Serialize)]
pub struct AccessRecord {
    /// RFC 3339 UTC with milliseconds, see [`rfc3339_ms`].
    pub ts: String,
    pub request_id: String,
    pub client_ip: String,
    pub method: String,
    pub host: String,
    /// The normalised path, never the query string.
    pub path: String,
    pub status: u16,
    pub bytes_sent: u64,
    #[serde(serialize_with = "millis")]
    pub duration_ms: f64,
    #[serde(serialize_with = "optional_millis")]
    pub upstream_ms: Option<f64>,
    pub route: Option<String>,
    pub upstream: Option<String>,
    pub user: Option<String>,
    pub org: Option<String>,
    /// allow | deny | shadow_deny | unauthenticated | ratelimited | error | reserved …
    pub decision: &'static str,
    pub reason: Option<&'static str>,
    pub user_agent: Option<String>,
}

/// Milliseconds rounded to 3 decimals, so the line never carries float noise.
fn millis<S: Serializer>(ms: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((ms * 1000.0).round() / 1000.0)
}

fn optional_millis<S: Serializer>(ms: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match ms {
        Some(ms) => millis(ms, s),
        None => s.serialize_none(),
    }
}

/// `2026-11-23T07:54:01.123Z`: RFC 3339, UTC, milliseconds (truncated).
pub fn rfc3339_ms(t: SystemTime) -> String {
    let nanos = match t.duration_since(UNIX_EPOCH) {
        Ok(after) => i128::try_from(after.as_nanos()).unwrap_or(i128::MAX),
        Err(before) => i128::try_from(before.duration().as_nanos()).map_or(i128::MIN, |n| -n),
    };
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
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
        if let Err(e) = serde_json::to_writer(&mut self.line, rec) {
            tracing::error!("access log record not serialisable: {e}");
            return false;
        }
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
