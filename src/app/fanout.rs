//! Redis pub/sub as a wake-up channel for the revocation watchers, so directory changes
//! reach every instance at once (see docs/design.md, Revocation fan-out).
//!
//! With `[redis]` configured, a watcher that applies new directory changes publishes the
//! last seq on `{key_prefix}changes`, and every watcher subscribes to it: a change made
//! through one instance wakes the others within a Redis round trip, also where PostgreSQL
//! LISTEN is unavailable (a transaction-pooling proxy in front of the database) or on
//! SQLite files shared by instances on one host (instead of the 250 ms poll).
//!
//! Like NOTIFY, a message only says "look now": the `directory_changes` table stays the
//! truth, so a lost message delays a change by at most one poll and never loses it, and a
//! forged message (anyone who can write to Redis) only causes an extra read.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use redis::aio::ConnectionManager;
use redis::Client;
use tokio::sync::{Notify, OnceCell};

/// How long a publish may take before it is abandoned (the poll covers it).
const PUBLISH_TIMEOUT: Duration = Duration::from_millis(500);
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// One process's link to the Redis channel.
pub struct Fanout {
    client: Client,
    channel: String,
    publisher: OnceCell<ConnectionManager>,
}

impl Fanout {
    /// `None` (with a warning) when the URL is unusable: the watchers then rely on
    /// NOTIFY and polling alone.
    pub fn new(url: &str, key_prefix: &str) -> Option<Arc<Fanout>> {
        match Client::open(url) {
            Ok(client) => Some(Arc::new(Fanout {
                client,
                channel: channel(key_prefix),
                publisher: OnceCell::new(),
            })),
            Err(e) => {
                tracing::warn!("redis.url is unusable for change fan-out: {:?}", e.kind());
                None
            }
        }
    }

    /// Announce that changes up to `seq` exist. Best effort: failures are logged at
    /// debug level (the other instances' polls still find the change).
    pub async fn publish(&self, seq: i64) {
        let publish = async {
            let conn = self
                .publisher
                .get_or_try_init(|| ConnectionManager::new(self.client.clone()))
                .await?;
            let mut conn = conn.clone();
            redis::cmd("PUBLISH")
                .arg(&self.channel)
                .arg(seq)
                .query_async::<i64>(&mut conn)
                .await
        };
        match tokio::time::timeout(PUBLISH_TIMEOUT, publish).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::debug!("change fan-out: publish failed: {:?}", e.kind()),
            Err(_) => tracing::debug!("change fan-out: publish timed out"),
        }
    }

    /// Subscribe and wake `wake` on every message, reconnecting with backoff; runs until
    /// the runtime stops.
    pub async fn subscribe(self: Arc<Self>, wake: Arc<Notify>) {
        let mut backoff = BACKOFF_MIN;
        let mut warned = false;
        loop {
            match self.client.get_async_pubsub().await {
                Ok(mut pubsub) => match pubsub.subscribe(&self.channel).await {
                    Ok(()) => {
                        if warned {
                            tracing::info!("change fan-out: subscribed to redis again");
                        }
                        warned = false;
                        backoff = BACKOFF_MIN;
                        // Anything published while we were away: look once now.
                        wake.notify_one();
                        let mut messages = pubsub.on_message();
                        while messages.next().await.is_some() {
                            wake.notify_one();
                        }
                    }
                    Err(e) => warned = warn_once(warned, &e),
                },
                Err(e) => warned = warn_once(warned, &e),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }
}

fn warn_once(warned: bool, e: &redis::RedisError) -> bool {
    if !warned {
        tracing::warn!(
            "change fan-out: redis subscription down ({:?}); changes still arrive by NOTIFY or polling",
            e.kind()
        );
    }
    true
}

/// The channel name for a key prefix.
pub fn channel(key_prefix: &str) -> String {
    format!("{key_prefix}changes")
}

#[cfg(test)]
mod tests {
    use super::*;

    const REDIS: &str = "redis://127.0.0.1:6379";

    #[tokio::test]
    async fn a_publish_wakes_a_subscriber_on_the_same_prefix_only() {
        let prefix = format!("pgtest{:08x}:", rand::random::<u32>());
        let a = Fanout::new(REDIS, &prefix).expect("client");
        let b = Fanout::new(REDIS, &prefix).expect("client");
        let other = Fanout::new(REDIS, "someone-else:").expect("client");
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(b.clone().subscribe(wake.clone()));
        // The first wake-up is the one after subscribing.
        tokio::time::timeout(Duration::from_secs(5), wake.notified())
            .await
            .expect("subscribed");
        other.publish(1).await;
        let stray = tokio::time::timeout(Duration::from_millis(300), wake.notified()).await;
        assert!(stray.is_err(), "another prefix's message woke us");
        a.publish(7).await;
        tokio::time::timeout(Duration::from_secs(5), wake.notified())
            .await
            .expect("woken by the publish");
        task.abort();
    }

    #[tokio::test]
    async fn an_unreachable_redis_neither_blocks_nor_panics() {
        let f = Fanout::new("redis://127.0.0.1:1", "x:").expect("client");
        let started = std::time::Instant::now();
        f.publish(1).await;
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(Fanout::new("not a url", "x:").is_none());
        assert_eq!(channel("partnergate:"), "partnergate:changes");
    }
}
