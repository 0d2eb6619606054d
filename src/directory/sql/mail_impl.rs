//! `impl MailStore` for one sqlx database, stamped out by `sql_mail!`, and
//! `enqueue_mail_in`, which the other writers call inside their own transaction.

/// `sql_mail!(Store type, DB)`.
macro_rules! sql_mail {
    ($store:ident, $db:ty) => {
        const _: () = {
            use async_trait::async_trait;
            use sqlx::Row;

            use $crate::directory::audit::AuditActor;
            use $crate::directory::changes::ChangeTarget;
            use $crate::directory::mail::{
                MailKind, MailStore, OutboxMail, OutgoingMail, PasswordReset, ResetRequested,
            };
            use $crate::directory::model::Timestamp;
            use $crate::directory::sql::mail_queries as mq;
            use $crate::directory::store::{StoreError, StoreResult};

            type Conn = <$db as sqlx::Database>::Connection;

            impl $store {
                /// Queue `mail` inside the caller's transaction: it commits, or is lost,
                /// together with the change that caused it.
                pub(crate) async fn enqueue_mail_in(
                    conn: &mut Conn,
                    mail: &OutgoingMail,
                    now: Timestamp,
                ) -> StoreResult<()> {
                    let id = format!("m-{:016x}", rand::random::<u64>());
                    sqlx::query(mq::INSERT_MAIL)
                        .bind(&id)
                        .bind(mail.kind.as_str())
                        .bind(&mail.recipient)
                        .bind(&mail.subject)
                        .bind(&mail.text)
                        .bind(&mail.html)
                        .bind(now)
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                }
            }

            #[async_trait]
            impl MailStore for $store {
                async fn claim_mail(
                    &self,
                    now: Timestamp,
                    lease: i64,
                    limit: u32,
                ) -> StoreResult<Vec<OutboxMail>> {
                    let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                    let rows = sqlx::query(mq::CLAIM_MAIL)
                        .bind(now)
                        .bind(now + lease)
                        .bind(i64::from(limit))
                        .fetch_all(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    rows.iter()
                        .map(|r| {
                            let kind: String = r.try_get(1)?;
                            let attempts: i64 = r.try_get(6)?;
                            Ok(OutboxMail {
                                id: r.try_get(0)?,
                                mail: OutgoingMail {
                                    kind: MailKind::parse(&kind).ok_or_else(|| {
                                        StoreError::Unavailable(format!(
                                            "corrupt row: mail kind {kind:?}"
                                        ))
                                    })?,
                                    recipient: r.try_get(2)?,
                                    subject: r.try_get(3)?,
                                    text: r.try_get(4)?,
                                    html: r.try_get(5)?,
                                },
                                attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                            })
                        })
                        .collect()
                }

                async fn mail_sent(&self, id: &str, now: Timestamp) -> StoreResult<()> {
                    sqlx::query(mq::MAIL_SENT)
                        .bind(id)
                        .bind(now)
                        .execute(&self.pool)
                        .await?;
                    Ok(())
                }

                async fn mail_failed(
                    &self,
                    id: &str,
                    next_attempt_at: Timestamp,
                    error: &str,
                    give_up: bool,
                    now: Timestamp,
                ) -> StoreResult<()> {
                    sqlx::query(mq::MAIL_FAILED)
                        .bind(id)
                        .bind(next_attempt_at)
                        .bind(error)
                        .bind(give_up.then_some(now))
                        .execute(&self.pool)
                        .await?;
                    Ok(())
                }

                async fn outbox_depth(&self) -> StoreResult<i64> {
                    Ok(sqlx::query(mq::OUTBOX_DEPTH)
                        .fetch_one(&self.pool)
                        .await?
                        .try_get(0)?)
                }

                async fn prune_mail(&self, before: Timestamp) -> StoreResult<u64> {
                    let mails = sqlx::query(mq::PRUNE_MAIL)
                        .bind(before)
                        .execute(&self.pool)
                        .await?
                        .rows_affected();
                    let resets = sqlx::query(mq::PRUNE_RESETS)
                        .bind(before)
                        .execute(&self.pool)
                        .await?
                        .rows_affected();
                    Ok(mails + resets)
                }

                async fn request_password_reset(
                    &self,
                    reset: &PasswordReset,
                    mail: &OutgoingMail,
                    max_open: u32,
                    window_start: Timestamp,
                    actor: &AuditActor,
                    now: Timestamp,
                ) -> StoreResult<ResetRequested> {
                    let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                    let open: i64 = sqlx::query(mq::OPEN_RESETS)
                        .bind(&reset.user_id)
                        .bind(window_start)
                        .fetch_one(&mut *tx)
                        .await?
                        .try_get(0)?;
                    if open >= i64::from(max_open) {
                        tx.rollback().await?;
                        return Ok(ResetRequested::TooMany);
                    }
                    sqlx::query(mq::INSERT_RESET)
                        .bind(&reset.token_hash)
                        .bind(&reset.user_id)
                        .bind(now)
                        .bind(reset.expires_at)
                        .execute(&mut *tx)
                        .await?;
                    Self::enqueue_mail_in(&mut tx, mail, now).await?;
                    let org: Option<String> = sqlx::query(mq::USER_EMAIL_ORG)
                        .bind(&reset.user_id)
                        .fetch_optional(&mut *tx)
                        .await?
                        .map(|r| r.try_get(1))
                        .transpose()?;
                    let mut entry = actor.entry(
                        "password.reset_request",
                        format!("user:{}", reset.user_id),
                        org,
                        serde_json::Value::Null,
                        serde_json::json!({ "expires_at": reset.expires_at }),
                    );
                    entry.before = None;
                    Self::append_audit_in(&mut tx, &entry, now).await?;
                    tx.commit().await?;
                    Ok(ResetRequested::Queued)
                }

                async fn reset_user(
                    &self,
                    token_hash: &str,
                    now: Timestamp,
                ) -> StoreResult<Option<String>> {
                    let row = sqlx::query(mq::RESET_USER)
                        .bind(token_hash)
                        .bind(now)
                        .fetch_optional(&self.pool)
                        .await?;
                    Ok(row.map(|r| r.try_get(0)).transpose()?)
                }

                async fn reset_password(
                    &self,
                    token_hash: &str,
                    password_hash: &str,
                    actor: &AuditActor,
                    now: Timestamp,
                ) -> StoreResult<Option<String>> {
                    let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                    let used = sqlx::query(mq::USE_RESET)
                        .bind(token_hash)
                        .bind(now)
                        .fetch_optional(&mut *tx)
                        .await?;
                    let Some(used) = used else {
                        tx.rollback().await?;
                        return Ok(None);
                    };
                    let user_id: String = used.try_get(0)?;
                    sqlx::query(mq::SET_PASSWORD_UNLOCK)
                        .bind(&user_id)
                        .bind(password_hash)
                        .execute(&mut *tx)
                        .await?;
                    let ended = sqlx::query(mq::DELETE_USER_SESSIONS)
                        .bind(&user_id)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    let org: Option<String> = sqlx::query(mq::USER_EMAIL_ORG)
                        .bind(&user_id)
                        .fetch_optional(&mut *tx)
                        .await?
                        .map(|r| r.try_get(1))
                        .transpose()?;
                    let targets = vec![ChangeTarget::User(user_id.clone())];
                    Self::record_changes_in(&mut tx, targets, now).await?;
                    let mut by_user = actor.clone();
                    by_user.actor = user_id.clone();
                    let mut entry = by_user.entry(
                        "password.reset",
                        format!("user:{user_id}"),
                        org,
                        serde_json::Value::Null,
                        serde_json::json!({ "sessions_ended": ended }),
                    );
                    entry.before = None;
                    Self::append_audit_in(&mut tx, &entry, now).await?;
                    tx.commit().await?;
                    Ok(Some(user_id))
                }
            }
        };
    };
}
