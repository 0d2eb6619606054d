//! Rate limits shared by several gateway instances: the same GCRA as governor, run by one
//! Lua script on Redis.

use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::io::tcp::TcpSettings;
use redis::{Client, Cmd, ErrorKind, RedisResult, RedisWrite, Script, ToRedisArgs, Value};
use tokio::runtime::Handle;

use super::local::gcra;
use super::{LimitKey, Verdict};
use crate::config::{RateSpec, RedisConfig};

/// GCRA on one key, atomically, on Redis server time (so instances whose clocks disagree
/// still share one budget). Same decision as governor: the state is the theoretical
/// arrival time (TAT, µs); a request passes if `now >= TAT - (burst - 1) * period`, and
/// then moves the TAT to `max(TAT, now) + period`. The key expires when its TAT passes,
/// i.e. when it is indistinguishable from a new key.
///
/// KEYS[1] = bucket, ARGV[1] = period (µs, ≥ 1), ARGV[2] = burst (≥ 1).
/// Returns `{1, 0}` (allowed) or `{0, µs until the next request would pass}`.
const GCRA_LUA: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local period = tonumber(ARGV[1])
local tau = period * (tonumber(ARGV[2]) - 1)
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local earliest = tat - tau
if now < earliest then
  return {0, earliest - now}
end
local next_tat = tat + period
redis.call('SET', KEYS[1], string.format('%.0f', next_tat),
  'PX', string.format('%.0f', math.ceil((next_tat - now) / 1000)))
return {1, 0}
";

/// How long Redis is skipped after a failed call (then one call probes it).
const BREAKER_OPEN: Duration = Duration::from_secs(1);
/// Budget of one connection attempt (connect and handshake).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest pause between two connection attempts while Redis is down at start.
const MAX_CONNECT_DELAY: Duration = Duration::from_secs(5);
/// Unacknowledged data older than this drops the connection (Linux `TCP_USER_TIMEOUT`),
/// so a silently vanished Redis is reconnected to instead of timing out forever.
#[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(5);

/// The connection to Redis for shared rate limits; one per process.
///
/// A check is one `EVALSHA` on a multiplexed connection, bounded by `redis.timeout`.
/// After a failure, Redis is not asked again for [`BREAKER_OPEN`] (every check fails at
/// once and the limit's fallback applies), so an outage does not add the timeout to
/// every request.
pub struct SharedStore {
    /// Set by the background connect task once Redis answered; it reconnects by itself.
    conn: OnceLock<ConnectionManager>,
    prefix: Box<str>,
    timeout: Duration,
    /// The runtime the connection lives on. Checks are polled inside it, so whatever the
    /// redis client spawns (reconnects) lands there, not on a caller's runtime.
    runtime: Handle,
    script: Script,
    breaker: Breaker,
    up: AtomicBool,
}

impl SharedStore {
    /// Returns at once: the connection is made by a task on `runtime`, retried with
    /// backoff while Redis is down (checks fail meanwhile, so fallbacks apply).
    pub fn new(config: &RedisConfig, runtime: &Handle) -> Arc<Self> {
        let store = Arc::new(SharedStore {
            conn: OnceLock::new(),
            prefix: config.key_prefix.as_str().into(),
            timeout: config.timeout,
            runtime: runtime.clone(),
            script: Script::new(GCRA_LUA),
            breaker: Breaker::new(),
            up: AtomicBool::new(false),
        });
        match Client::open(config.url.as_str()) {
            Ok(client) => {
                runtime.spawn(connect(Arc::downgrade(&store), client));
            }
            // The URL is not logged: it may hold a password.
            Err(e) => tracing::error!(
                error = %e,
                "redis.url is unusable: shared rate limits use their on_redis_error fallback"
            ),
        }
        store
    }

    /// Counts one request against the shared bucket `prefix + "rl:" + label + ":" + key`.
    /// `Err(())` when Redis did not answer within `redis.timeout`, failed, is not
    /// connected, or is being skipped after a recent failure.
    pub async fn check(
        &self,
        label: &str,
        key: LimitKey<'_>,
        spec: RateSpec,
    ) -> Result<Verdict, ()> {
        let Some(conn) = self.conn.get() else {
            return Err(());
        };
        if !self.breaker.try_pass() {
            return Err(());
        }
        let mut conn = conn.clone();
        let cmd = self.command(label, key, spec);
        let mut request = pin!(self.eval(&mut conn, &cmd));
        let runtime = &self.runtime;
        let request = poll_fn(move |cx| {
            let _entered = runtime.enter();
            request.as_mut().poll(cx)
        });
        match self.deadline(request).await {
            Ok(Ok(verdict)) => {
                self.breaker.close();
                if !self.up.swap(true, Ordering::Relaxed) {
                    tracing::info!("redis answers again: shared rate limits active");
                }
                Ok(verdict)
            }
            Ok(Err(e)) => {
                self.failed(&e);
                Err(())
            }
            Err(_) => {
                self.failed(&format_args!("no answer within {:?}", self.timeout));
                Err(())
            }
        }
    }

    /// True while Redis answers: set when connected and by every answered check, cleared
    /// by a failed one.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// True once a connection was made (the client reconnects by itself from then on).
    pub fn is_connected(&self) -> bool {
        self.conn.get().is_some()
    }

    /// Whether a check would ask Redis now (connected, not skipped after a failure).
    pub(crate) fn available(&self) -> bool {
        self.conn.get().is_some() && self.breaker.is_passable()
    }

    /// `EVALSHA <sha> 1 <key> <period µs> <burst>`, built in one buffer (the key is
    /// formatted straight into it).
    fn command(&self, label: &str, key: LimitKey<'_>, spec: RateSpec) -> Cmd {
        let (period, burst) = gcra(spec);
        let period_us = u64::try_from(period.as_nanos().div_ceil(1000))
            .unwrap_or(u64::MAX)
            .max(1);
        let name_len = match key {
            LimitKey::Name(name) => name.len(),
            _ => 0,
        };
        let mut cmd = Cmd::with_capacity(6, 112 + self.prefix.len() + label.len() + name_len);
        cmd.arg("EVALSHA")
            .arg(self.script.get_hash())
            .arg(1)
            .arg(BucketKey {
                prefix: &self.prefix,
                label,
                key,
            })
            .arg(period_us)
            .arg(burst.get());
        cmd
    }

    async fn eval(&self, conn: &mut ConnectionManager, cmd: &Cmd) -> RedisResult<Verdict> {
        // Server errors come back as values; `extract_error` makes them errors.
        let value = match conn
            .send_packed_command(cmd)
            .await
            .and_then(Value::extract_error)
        {
            // Redis restarted or flushed its scripts: load it and try once more.
            Err(e) if e.kind() == ErrorKind::NoScriptError => {
                self.script.load_async(conn).await?;
                conn.send_packed_command(cmd)
                    .await
                    .and_then(Value::extract_error)?
            }
            other => other?,
        };
        let (allowed, retry_us): (i64, i64) = redis::from_redis_value(&value)?;
        Ok(if allowed == 1 {
            Verdict::Allow
        } else {
            Verdict::Limited {
                retry_after: Duration::from_micros(u64::try_from(retry_us).unwrap_or(0)),
            }
        })
    }

    /// Bounds `request` by `redis.timeout`, timed by the caller's runtime (which is being
    /// driven, since it polls us); outside any runtime, by the store's.
    fn deadline<F: Future>(&self, request: F) -> tokio::time::Timeout<F> {
        let _entered = Handle::try_current().is_err().then(|| self.runtime.enter());
        tokio::time::timeout(self.timeout, request)
    }

    fn failed(&self, error: &dyn fmt::Display) {
        self.up.store(false, Ordering::Relaxed);
        if self.breaker.open() {
            tracing::warn!(
                %error,
                "redis rate-limit check failed: skipping redis for {BREAKER_OPEN:?}, limits use their on_redis_error fallback"
            );
        } else {
            tracing::debug!(%error, "redis rate-limit probe failed");
        }
    }
}

impl fmt::Debug for SharedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedStore")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("connected", &self.conn.get().is_some())
            .field("up", &self.is_up())
            .finish()
    }
}

/// Connects in the background until Redis answers (or the store is dropped).
async fn connect(store: Weak<SharedStore>, client: Client) {
    let tcp = TcpSettings::default().set_nodelay(true);
    #[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
    let tcp = tcp.set_user_timeout(TCP_USER_TIMEOUT);
    // Reconnects after a drop are the manager's: a few quick tries, then again on the
    // next call (at most one a second, the breaker's pace).
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(CONNECT_TIMEOUT)
        .set_number_of_retries(2)
        .set_factor(100)
        .set_max_delay(1000)
        .set_tcp_settings(tcp);
    let mut delay = Duration::from_millis(250);
    let mut warned = false;
    loop {
        let attempt = ConnectionManager::new_with_config(client.clone(), config.clone()).await;
        let Some(this) = store.upgrade() else {
            return;
        };
        match attempt {
            Ok(mut manager) => {
                // Saves the first check a NOSCRIPT round trip; that path works anyway.
                let load = this.script.load_async(&mut manager);
                match tokio::time::timeout(CONNECT_TIMEOUT, load).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "loading the rate-limit script failed")
                    }
                    Err(_) => tracing::debug!("loading the rate-limit script timed out"),
                }
                if this.conn.set(manager).is_ok() {
                    this.up.store(true, Ordering::Relaxed);
                    tracing::info!("connected to redis: shared rate limits active");
                }
                return;
            }
            Err(e) if !warned => {
                warned = true;
                tracing::warn!(
                    error = %e,
                    "cannot connect to redis (retrying in the background): rate limits use their on_redis_error fallback"
                );
            }
            Err(e) => tracing::debug!(error = %e, "cannot connect to redis"),
        }
        drop(this);
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_CONNECT_DELAY);
    }
}

/// `prefix + "rl:" + label + ":" + key`, written straight into a command's buffer.
struct BucketKey<'a> {
    prefix: &'a str,
    label: &'a str,
    key: LimitKey<'a>,
}

impl fmt::Display for BucketKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}rl:{}:{}", self.prefix, self.label, self.key)
    }
}

impl ToRedisArgs for BucketKey<'_> {
    fn write_redis_args<W>(&self, out: &mut W)
    where
        W: ?Sized + RedisWrite,
    {
        out.write_arg_fmt(self);
    }
}

/// Skips Redis for [`BREAKER_OPEN`] after a failure; then lets one call through to probe
/// it while the others keep skipping, and closes when a call succeeds.
struct Breaker {
    epoch: Instant,
    /// Milliseconds since `epoch` (+1) until which Redis is skipped; 0 = closed.
    open_until: AtomicU64,
}

impl Breaker {
    fn new() -> Self {
        Breaker {
            epoch: Instant::now(),
            open_until: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1)
    }

    fn reopen_at(&self) -> u64 {
        self.now()
            .saturating_add(u64::try_from(BREAKER_OPEN.as_millis()).unwrap_or(1000))
    }

    /// Closed, or open but due for a probe.
    fn is_passable(&self) -> bool {
        let until = self.open_until.load(Ordering::Acquire);
        until == 0 || self.now() >= until
    }

    /// May this call ask Redis? When due, only the caller that wins the swap probes.
    fn try_pass(&self) -> bool {
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            return true;
        }
        if self.now() < until {
            return false;
        }
        self.open_until
            .compare_exchange(until, self.reopen_at(), Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    fn close(&self) {
        self.open_until.store(0, Ordering::Release);
    }

    /// Opens (again); true if it was closed.
    fn open(&self) -> bool {
        self.open_until.swap(self.reopen_at(), Ordering::AcqRel) == 0
    }
}
