//! argon2id hashing and verification on a small pool of dedicated OS threads, so the
//! ~20 ms of memory-hard work per login never runs on a proxy or async worker thread.
//!
//! The pool has a bounded queue: when it is full the caller gets [`HashError::Busy`] at
//! once and answers 503 instead of piling up logins.

use std::num::NonZeroUsize;
use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use argon2::password_hash::{self, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use http::StatusCode;
use tokio::sync::oneshot;

/// OWASP's argon2id recommendation: 19 MiB, 2 passes, 1 lane.
pub const MEMORY_KIB: u32 = 19_456;
pub const ITERATIONS: u32 = 2;
pub const PARALLELISM: u32 = 1;

/// Most hashing threads the default pool starts, whatever the CPU count: logins are rare
/// next to proxied requests, and each running hash holds 19 MiB.
pub const MAX_DEFAULT_THREADS: usize = 4;

/// Jobs the default pool queues beyond those running.
pub const DEFAULT_QUEUE: usize = 64;

/// A hash of a random secret nobody knows, made with the parameters above. Verifying
/// against it costs what a real verification costs, so an unknown user and a wrong
/// password take the same time.
const DUMMY_PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$\
    gyezHtZmShQMtMRpsOcmfw$ppfSftZ91yKAx0xoAQWKdTZWJQsm5rAUzwmziyBo0BY";

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every hashing thread is busy and the queue is full.
    #[error("password hashing is busy; try again shortly")]
    Busy,
    /// The pool's threads are gone (cannot be started, or shut down).
    #[error("password hashing is not running")]
    Stopped,
    /// A stored hash is not a PHC string argon2 understands.
    #[error("stored password hash is malformed")]
    InvalidStoredHash,
    #[error("password hashing failed: {0}")]
    Argon2(String),
}

impl HashError {
    /// What an HTTP caller answers: a full pool is temporary, the rest is a server fault.
    pub fn status(&self) -> StatusCode {
        match self {
            HashError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<argon2::Error> for HashError {
    fn from(error: argon2::Error) -> Self {
        HashError::Argon2(error.to_string())
    }
}

impl From<password_hash::Error> for HashError {
    fn from(error: password_hash::Error) -> Self {
        HashError::Argon2(error.to_string())
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// A handle on the hashing pool; clones share it. The threads stop once every handle is
/// dropped and the queue is drained.
#[derive(Clone, Debug)]
pub struct PasswordHasher {
    jobs: SyncSender<Job>,
}

impl Default for PasswordHasher {
    fn default() -> Self {
        PasswordHasher::new(default_threads(), DEFAULT_QUEUE)
    }
}

impl PasswordHasher {
    /// Start `threads` hashing threads (at least one) with room for `queue` waiting jobs.
    pub fn new(threads: usize, queue: usize) -> Self {
        let (jobs, receiver) = mpsc::sync_channel::<Job>(queue);
        let receiver = Arc::new(Mutex::new(receiver));
        for index in 0..threads.max(1) {
            let receiver = Arc::clone(&receiver);
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{index}"))
                .spawn(move || work(&receiver));
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start a password hashing thread");
            }
        }
        PasswordHasher { jobs }
    }

    /// Hash `password` with a fresh random salt; the PHC string to store.
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        self.run(move || hash_now(&password)).await
    }

    /// Whether `password` matches the stored `phc`. `None` (unknown user, or a user
    /// without a password) does the same work against a dummy hash and answers `false`.
    pub async fn verify(&self, password: String, phc: Option<String>) -> Result<bool, HashError> {
        self.run(move || verify_now(&password, phc.as_deref()))
            .await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, HashError> + Send + 'static,
    ) -> Result<T, HashError> {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move || {
            // The caller may have gone away; nothing to do then.
            let _ = reply.send(work());
        });
        self.jobs.try_send(job).map_err(|error| match error {
            TrySendError::Full(_) => HashError::Busy,
            TrySendError::Disconnected(_) => HashError::Stopped,
        })?;
        answer.await.map_err(|_| HashError::Stopped)?
    }
}

/// CPUs, capped at [`MAX_DEFAULT_THREADS`].
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .min(MAX_DEFAULT_THREADS)
}

fn work(receiver: &Mutex<Receiver<Job>>) {
    loop {
        // The lock is held only while waiting for a job, never while running one.
        let job = match receiver.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        if std::panic::catch_unwind(AssertUnwindSafe(job)).is_err() {
            tracing::error!("a password hashing job panicked");
        }
    }
}

fn argon2() -> Result<Argon2<'static>, HashError> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hash on the calling thread (the `hash-password` command; tests). Servers use
/// [`PasswordHasher::hash`].
pub fn hash_now(password: &str) -> Result<String, HashError> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())?;
    let hash = argon2()?.hash_password(password.as_bytes(), &salt)?;
    Ok(hash.to_string())
}

/// Verify on the calling thread; see [`PasswordHasher::verify`].
pub fn verify_now(password: &str, phc: Option<&str>) -> Result<bool, HashError> {
    match phc {
        Some(phc) => verify_against(password, phc),
        None => {
            verify_dummy(password);
            Ok(false)
        }
    }
}

fn verify_dummy(password: &str) {
    if let Ok(dummy) = PasswordHash::new(DUMMY_PHC) {
        if let Ok(argon2) = argon2() {
            let _ = argon2.verify_password(password.as_bytes(), &dummy);
        }
    }
}

fn verify_against(password: &str, phc: &str) -> Result<bool, HashError> {
    let parsed = PasswordHash::new(phc).ok();
    let Some(stored) = parsed.filter(|p| p.salt.is_some() && p.hash.is_some()) else {
        // Spend the usual time anyway: a broken record must not stand out by timing.
        verify_dummy(password);
        return Err(HashError::InvalidStoredHash);
    };
    // argon2 compares the computed and stored outputs in constant time.
    match argon2()?.verify_password(password.as_bytes(), &stored) {
        Ok(()) => Ok(true),
        Err(password_hash::Error::Password) => Ok(false),
        Err(error) => Err(error.into()),
    }
}

#[cfg(test)]
mod tests;
