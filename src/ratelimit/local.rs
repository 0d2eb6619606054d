//! One limit's buckets in this process: governor GCRA limiters keyed by address, by name,
//! and one for the whole route.

use std::cell::RefCell;
use std::fmt;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::{DashMapStateStore, ShrinkableKeyedStateStore};
use governor::state::{InMemoryState, NotKeyed, StateStore};
use governor::{NotUntil, Quota, RateLimiter};

use super::{bucket_ip, LimitKey, Verdict};
use crate::config::RateSpec;

/// Most keys one limiter holds. Idle keys go at every upkeep; if a flood of distinct keys
/// still leaves more than this, the limiter forgets them all rather than grow without
/// bound (about 100 bytes a key).
pub const MAX_KEYS: usize = 1_000_000;

/// Longest time a full bucket takes to refill (`burst` / `per_second`), about 71 years:
/// longer specs are clamped so that GCRA arithmetic stays exact in governor's u64
/// nanoseconds and in the f64 microseconds of the Redis script.
const MAX_WINDOW_MICROS: u64 = 1 << 51;

/// The GCRA parameters of a spec: one request per `period`, `burst` at once.
pub(crate) fn gcra(spec: RateSpec) -> (Duration, NonZeroU32) {
    let burst = NonZeroU32::new(spec.burst).unwrap_or(NonZeroU32::MIN);
    let longest = Duration::from_micros(MAX_WINDOW_MICROS / u64::from(burst.get()));
    let period = if spec.per_second.is_finite() && spec.per_second > 0.0 {
        Duration::try_from_secs_f64(1.0 / spec.per_second).unwrap_or(longest)
    } else {
        longest
    };
    (period.clamp(Duration::from_nanos(1), longest), burst)
}

/// A keyed state store whose map stays reachable after governor took the store, so that
/// upkeep can clear it (governor only offers `retain_recent`).
struct Keys<K: Hash + Eq + Clone>(Arc<DashMapStateStore<K>>);

impl<K: Hash + Eq + Clone> StateStore for Keys<K> {
    type Key = K;

    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        self.0.measure_and_replace(key, f)
    }
}

impl<K: Hash + Eq + Clone> ShrinkableKeyedStateStore<K> for Keys<K> {
    fn retain_recent(&self, drop_below: Nanos) {
        ShrinkableKeyedStateStore::retain_recent(&*self.0, drop_below);
    }

    fn shrink_to_fit(&self) {
        self.0.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

type Keyed<K, C> = RateLimiter<K, Keys<K>, C, NoOpMiddleware<<C as Clock>::Instant>>;
type Direct<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// One keyed governor limiter and a handle on its map.
struct KeyedLimiter<K: Hash + Eq + Clone, C: Clock> {
    limiter: Keyed<K, C>,
    map: Arc<DashMapStateStore<K>>,
}

impl<K: Hash + Eq + Clone, C: Clock> KeyedLimiter<K, C> {
    fn new(quota: Quota, clock: C) -> Self {
        let map = Arc::new(DashMapStateStore::default());
        KeyedLimiter {
            limiter: RateLimiter::new(quota, Keys(Arc::clone(&map)), clock),
            map,
        }
    }

    fn check(&self, key: &K) -> Verdict {
        verdict(self.limiter.check_key(key), self.limiter.clock())
    }
}

fn verdict<C: Clock>(result: Result<(), NotUntil<C::Instant>>, clock: &C) -> Verdict {
    match result {
        Ok(()) => Verdict::Allow,
        Err(not_until) => Verdict::Limited {
            retry_after: not_until.wait_time_from(clock.now()),
        },
    }
}

thread_local! {
    /// Reused key buffer: governor looks keys up by `&String`, and a `String` per check
    /// would allocate on every request. Only a key seen for the first time is copied.
    static NAME_KEY: RefCell<String> = const { RefCell::new(String::new()) };
}

/// A name longer than this does not keep its buffer (a thread keeps at most this much).
const NAME_KEY_KEEP: usize = 1024;

/// One configured limit: GCRA buckets in this process, and the label its Redis keys use.
///
/// Generic over governor's clock so tests can move time by hand; the gateway uses the
/// default (quanta) clock.
pub struct Limiter<C: Clock = DefaultClock> {
    label: Box<str>,
    spec: RateSpec,
    ips: KeyedLimiter<IpAddr, C>,
    names: KeyedLimiter<String, C>,
    whole: Direct<C>,
    max_keys: usize,
    /// Set once the key cap was hit, so the warning is logged once per limiter.
    overflowed: AtomicBool,
}

impl Limiter {
    /// A limit on the real clock. `label` names it in Redis keys: `global`, `login`,
    /// `route:<name>`.
    pub fn new(label: &str, spec: RateSpec) -> Self {
        Self::with_clock(label, spec, DefaultClock::default())
    }
}

impl<C: Clock + Clone> Limiter<C> {
    /// A limit on the given clock (tests use `governor::clock::FakeRelativeClock`).
    pub fn with_clock(label: &str, spec: RateSpec, clock: C) -> Self {
        Self::with_clock_and_cap(label, spec, clock, MAX_KEYS)
    }

    pub(crate) fn with_clock_and_cap(
        label: &str,
        spec: RateSpec,
        clock: C,
        max_keys: usize,
    ) -> Self {
        let (period, burst) = gcra(spec);
        // `gcra` never returns a zero period; fall back to governor's own floor if it did.
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        Limiter {
            label: label.into(),
            spec,
            ips: KeyedLimiter::new(quota, clock.clone()),
            names: KeyedLimiter::new(quota, clock.clone()),
            whole: RateLimiter::direct_with_clock(quota, clock),
            max_keys,
            overflowed: AtomicBool::new(false),
        }
    }
}

impl<C: Clock> Limiter<C> {
    /// The label of this limit's Redis keys (`global`, `login`, `route:<name>`).
    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn spec(&self) -> RateSpec {
        self.spec
    }

    /// Counts one request against this process's buckets. Never
    /// [`Verdict::Unavailable`]; allocates only for a key not seen before.
    pub fn check_local(&self, key: LimitKey<'_>) -> Verdict {
        match key {
            LimitKey::Ip(ip) => self.ips.check(&bucket_ip(ip)),
            LimitKey::Name(name) => NAME_KEY.with(|buffer| match buffer.try_borrow_mut() {
                Ok(mut buffer) => {
                    buffer.clear();
                    buffer.push_str(name);
                    let verdict = self.names.check(&buffer);
                    if buffer.capacity() > NAME_KEY_KEEP {
                        *buffer = String::new();
                    }
                    verdict
                }
                // Not reachable (nothing in a check re-enters it), but never panic for it.
                Err(_) => self.names.check(&name.to_owned()),
            }),
            LimitKey::Whole => verdict(self.whole.check(), self.whole.clock()),
        }
    }

    /// Forgets keys whose bucket is full again (indistinguishable from a new key), and
    /// every key if more than [`MAX_KEYS`] remain: bounded memory beats exact limits
    /// for the length of a flood of distinct keys.
    pub fn evict_idle(&self) {
        self.ips.limiter.retain_recent();
        self.names.limiter.retain_recent();
        let keys = self.keys();
        if keys > self.max_keys {
            self.ips.map.clear();
            self.names.map.clear();
            if !self.overflowed.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    limit = %self.label,
                    keys,
                    cap = self.max_keys,
                    "rate limit holds too many keys: forgot them all (logged once per limit)"
                );
            }
        }
        self.ips.limiter.shrink_to_fit();
        self.names.limiter.shrink_to_fit();
    }

    /// How many keys (addresses and names) this limit holds now.
    pub fn keys(&self) -> usize {
        self.ips.map.len() + self.names.map.len()
    }
}

impl<C: Clock> fmt::Debug for Limiter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limiter")
            .field("label", &self.label)
            .field("spec", &self.spec)
            .field("keys", &self.keys())
            .finish()
    }
}
