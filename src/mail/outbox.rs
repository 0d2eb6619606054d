//! The outbox worker: claims due mails from the directory, sends each over SMTP (lettre),
//! marks it sent, or schedules the next attempt with exponential backoff. A claim moves
//! the row's next attempt forward first (a lease), so several instances never send the
//! same mail at once; a crash between the SMTP server's acceptance and the "sent" mark
//! can send that one mail again after the lease (at least once, never lost).

use std::sync::Arc;
use std::time::Duration;

use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use prometheus::{IntCounterVec, IntGauge};
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::config::{MailConfig, MailTls};
use crate::directory::{OutboxMail, Store};

/// How long a claimed mail is left to its worker before another may take it.
const LEASE: i64 = 300;
/// Mails claimed at once.
const BATCH: u32 = 20;
/// The worker looks for due mail at least this often (and at once when told).
const POLL: Duration = Duration::from_secs(5);
/// Sent and given-up mails, and old reset tokens, are kept this long (seconds) and then
/// deleted, so the tables do not grow without end.
const KEEP: i64 = 7 * 86_400;
/// Prune once in this many rounds (about an hour at the poll interval).
const PRUNE_EVERY: u64 = 720;

/// Seconds before attempt `attempts + 1`: 10 s doubling each time, at most an hour.
pub fn backoff(attempts: u32) -> i64 {
    let exp = attempts.min(20);
    (10_i64 << exp).min(3600)
}

/// The SMTP connection and the sender, from `[mail]`.
pub struct Transport {
    smtp: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    pub max_attempts: u32,
}

impl Transport {
    pub fn new(cfg: &MailConfig) -> Result<Transport, String> {
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(cfg.host.as_str())
                .port(cfg.port)
                .timeout(Some(cfg.timeout));
        builder = match cfg.tls {
            MailTls::None => builder.tls(Tls::None),
            MailTls::StartTls | MailTls::Implicit => {
                let params = TlsParameters::new(cfg.host.clone()).map_err(|e| e.to_string())?;
                builder.tls(match cfg.tls {
                    MailTls::Implicit => Tls::Wrapper(params),
                    _ => Tls::Required(params),
                })
            }
        };
        if let (Some(user), Some(password)) = (&cfg.username, &cfg.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        let from: Mailbox = cfg
            .from
            .parse()
            .map_err(|e| format!("mail.from {:?}: {e}", cfg.from))?;
        Ok(Transport {
            smtp: builder.build(),
            from,
            max_attempts: cfg.max_attempts,
        })
    }

    /// Send one mail (plain text and HTML alternatives).
    pub async fn send(&self, mail: &crate::directory::OutgoingMail) -> Result<(), String> {
        let to: Mailbox = mail
            .recipient
            .parse()
            .map_err(|e| format!("recipient: {e}"))?;
        let body = MultiPart::alternative()
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(mail.text.clone()),
            )
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_HTML)
                    .body(mail.html.clone()),
            );
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.clone())
            .multipart(body)
            .map_err(|e| e.to_string())?;
        self.smtp
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Sends what the directory's outbox holds.
pub struct Outbox {
    store: Arc<dyn Store>,
    transport: Transport,
    clock: Arc<dyn Clock>,
    sent: IntCounterVec,
    depth: IntGauge,
    /// Told when a request queued a mail, so it goes out without waiting for the poll.
    pub wake: Arc<Notify>,
}

impl Outbox {
    pub fn new(
        store: Arc<dyn Store>,
        transport: Transport,
        clock: Arc<dyn Clock>,
        sent: IntCounterVec,
        depth: IntGauge,
    ) -> Outbox {
        Outbox {
            store,
            transport,
            clock,
            sent,
            depth,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Run until the process ends.
    pub async fn run(self) {
        let mut rounds: u64 = 0;
        loop {
            if rounds % PRUNE_EVERY == 0 {
                match self.store.prune_mail(self.clock.now() - KEEP).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!("mail outbox: pruned {n} old row(s)"),
                    Err(e) => tracing::warn!("mail outbox prune: {e}"),
                }
            }
            rounds += 1;
            match self.round().await {
                Ok(BATCH) => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!("mail outbox: {e}"),
            }
            let _ = tokio::time::timeout(POLL, self.wake.notified()).await;
        }
    }

    /// Send the mails due now; how many were claimed.
    pub async fn round(&self) -> Result<u32, crate::directory::StoreError> {
        let now = self.clock.now();
        let due = self.store.claim_mail(now, LEASE, BATCH).await?;
        let claimed = due.len() as u32;
        for mail in due {
            self.deliver(mail).await?;
        }
        self.depth.set(self.store.outbox_depth().await?);
        Ok(claimed)
    }

    async fn deliver(&self, item: OutboxMail) -> Result<(), crate::directory::StoreError> {
        let kind = item.mail.kind.as_str();
        match self.transport.send(&item.mail).await {
            Ok(()) => {
                self.store.mail_sent(&item.id, self.clock.now()).await?;
                self.sent.with_label_values(&[kind, "sent"]).inc();
                tracing::info!(kind, to = %item.mail.recipient, "mail sent");
            }
            Err(error) => {
                let attempts = item.attempts + 1;
                let give_up = attempts >= self.transport.max_attempts;
                let now = self.clock.now();
                let next = now + backoff(item.attempts);
                self.store
                    .mail_failed(&item.id, next, &error, give_up, now)
                    .await?;
                let result = if give_up { "failed" } else { "retry" };
                self.sent.with_label_values(&[kind, result]).inc();
                tracing::warn!(kind, to = %item.mail.recipient, attempts, give_up, "mail not sent: {error}");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        assert_eq!(
            (0..10).map(backoff).collect::<Vec<_>>(),
            [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600]
        );
        assert_eq!(backoff(u32::MAX), 3600);
    }
}
