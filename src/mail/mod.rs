//! Mail: what each message says ([`Letters`]), and the outbox worker ([`Outbox`]) that
//! sends what the directory queued. A mail is written to the outbox in the transaction of
//! the change that causes it, so a down SMTP server loses nothing and delays no request;
//! the worker sends it with retries and backoff.

mod letters;
mod outbox;

use std::sync::Arc;

pub use letters::Letters;
pub use outbox::{backoff, Outbox, Transport};

/// What the request path needs to queue a mail: the letters, and the worker to wake.
#[derive(Clone)]
pub struct Mail {
    pub letters: Letters,
    pub wake: Arc<tokio::sync::Notify>,
}

impl Mail {
    /// Tell the worker a mail was queued (after the transaction committed).
    pub fn queued(&self) {
        self.wake.notify_one();
    }
}
