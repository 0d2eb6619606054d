//! `impl FactorStore` for one sqlx database, stamped out by `sql_factors!`. Each write is
//! one transaction: its own rows, then the directory change for the user (so every
//! instance re-reads the user's identity and drops their cached sessions' view of it),
//! then the audit record.

/// `sql_factors!(Store type, DB)`.
macro_rules! sql_factors {
    ($store:ident, $db:ty) => {
        const _: () = {
            use async_trait::async_trait;
            use sqlx::Row;

            use $crate::directory::audit::AuditEntry;
            use $crate::directory::changes::ChangeTarget;
            use $crate::directory::factors::{Factor, FactorKind, FactorStore, LoginChallenge};
            use $crate::directory::model::Timestamp;
            use $crate::directory::sql::factor_queries as fq;
            use $crate::directory::store::{StoreError, StoreResult};

            type Conn = <$db as sqlx::Database>::Connection;
            type DbRow = <$db as sqlx::Database>::Row;

            fn factor(row: &DbRow) -> StoreResult<Factor> {
                let kind: String = row.try_get(2)?;
                Ok(Factor {
                    id: row.try_get(0)?,
                    user_id: row.try_get(1)?,
                    kind: FactorKind::parse(&kind).ok_or_else(|| {
                        StoreError::Unavailable(format!("corrupt row: factor kind {kind:?}"))
                    })?,
                    name: row.try_get(3)?,
                    secret: row.try_get(4)?,
                    last_step: row.try_get(5)?,
                    created_at: row.try_get(6)?,
                    last_used_at: row.try_get(7)?,
                })
            }

            impl $store {
                async fn replace_codes_in(
                    conn: &mut Conn,
                    user_id: &str,
                    hashes: &[String],
                ) -> StoreResult<()> {
                    sqlx::query(fq::DELETE_RECOVERY_CODES)
                        .bind(user_id)
                        .execute(&mut *conn)
                        .await?;
                    for hash in hashes {
                        sqlx::query(fq::INSERT_RECOVERY_CODE)
                            .bind(user_id)
                            .bind(hash)
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                }

                /// The directory change for the user and the audit record, in `conn`'s
                /// transaction.
                async fn factor_change_in(
                    conn: &mut Conn,
                    user_id: &str,
                    audit: &AuditEntry,
                    now: Timestamp,
                ) -> StoreResult<()> {
                    let targets = vec![ChangeTarget::User(user_id.to_string())];
                    Self::record_changes_in(conn, targets, now).await?;
                    Self::append_audit_in(conn, audit, now).await?;
                    Ok(())
                }
            }

            #[async_trait]
            impl FactorStore for $store {
                async fn factors(&self, user_id: &str) -> StoreResult<Vec<Factor>> {
                    let rows = sqlx::query(fq::FACTORS)
                        .bind(user_id)
                        .fetch_all(&self.pool)
                        .await?;
                    rows.iter().map(factor).collect()
                }

                async fn add_factor(
                    &self,
                    f: &Factor,
                    recovery_hashes: Option<&[String]>,
                    audit: &AuditEntry,
                    now: Timestamp,
                ) -> StoreResult<()> {
                    let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                    sqlx::query(fq::INSERT_FACTOR)
                        .bind(&f.id)
                        .bind(&f.user_id)
                        .bind(f.kind.as_str())
                        .bind(&f.name)
                        .bind(&f.secret)
                        .bind(f.last_step)
                        .bind(f.created_at)
                        .execute(&mut *tx)
                        .await?;
                    if let Some(hashes) = recovery_hashes {
                        Self::replace_codes_in(&mut tx, &f.user_id, hashes).await?;
                    }
                    Self::factor_change_in(&mut tx, &f.user_id, audit, now).await?;
                    Ok(tx.commit().await?)
                }

                async fn remove_factor(
                    &self,
                    user_id: &str,
                    factor_id: &str,
                    audit: &AuditEntry,
                    now: Timestamp,
                ) -> StoreResult<bool> {
                    let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                    let done = sqlx::query(fq::DELETE_FACTOR)
                        .bind(user_id)
                        .bind(factor_id)
                        .execute(&mut *tx)
                        .await?;
                    if done.rows_affected() == 0 {
                        tx.rollback().await?;
                        return Ok(false);
                    }
                    let left: i64 = sqlx::query(fq::COUNT_FACTORS)
                        .bind(user_id)
                        .fetch_one(&mut *tx)
                        .await?
                        .try_get(0)?;
                    if left == 0 {
                        Self::replace_codes_in(&mut tx, user_id, &[]).await?;
                    }
                    Self::factor_change_in(&mut tx, user_id, audit, now).await?;
                    tx.commit().await?;
                    Ok(true)
                }

                async fn reset_factors(
                    &self,
                    user_id: &str,
                    audit: &AuditEntry,
                    now: Timestamp,
                ) -> StoreResult<u32> {
                    let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                    let done = sqlx::query(fq::DELETE_USER_FACTORS)
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await?;
                    Self::replace_codes_in(&mut tx, user_id, &[]).await?;
                    let removed = u32::try_from(done.rows_affected()).unwrap_or(u32::MAX);
                    // Sessions signed in with the removed factors end too.
                    let ended = sqlx::query(fq::DELETE_USER_SESSIONS)
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    let mut audit = audit.clone();
                    audit.after = Some(serde_json::json!({
                        "factors_removed": removed, "sessions_ended": ended,
                    }));
                    Self::factor_change_in(&mut tx, user_id, &audit, now).await?;
                    tx.commit().await?;
                    Ok(removed)
                }

                async fn use_totp_step(
                    &self,
                    factor_id: &str,
                    step: i64,
                    now: Timestamp,
                ) -> StoreResult<bool> {
                    let done = sqlx::query(fq::USE_TOTP_STEP)
                        .bind(factor_id)
                        .bind(step)
                        .bind(now)
                        .execute(&self.pool)
                        .await?;
                    Ok(done.rows_affected() == 1)
                }

                async fn use_passkey(
                    &self,
                    factor_id: &str,
                    credential: &str,
                    now: Timestamp,
                ) -> StoreResult<()> {
                    sqlx::query(fq::USE_PASSKEY)
                        .bind(factor_id)
                        .bind(credential)
                        .bind(now)
                        .execute(&self.pool)
                        .await?;
                    Ok(())
                }

                async fn use_recovery_code(
                    &self,
                    user_id: &str,
                    code_hash: &str,
                    now: Timestamp,
                ) -> StoreResult<bool> {
                    let done = sqlx::query(fq::USE_RECOVERY_CODE)
                        .bind(user_id)
                        .bind(code_hash)
                        .bind(now)
                        .execute(&self.pool)
                        .await?;
                    Ok(done.rows_affected() == 1)
                }

                async fn replace_recovery_codes(
                    &self,
                    user_id: &str,
                    hashes: &[String],
                    audit: &AuditEntry,
                    now: Timestamp,
                ) -> StoreResult<()> {
                    let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                    Self::replace_codes_in(&mut tx, user_id, hashes).await?;
                    Self::append_audit_in(&mut tx, audit, now).await?;
                    Ok(tx.commit().await?)
                }

                async fn recovery_codes_left(&self, user_id: &str) -> StoreResult<u32> {
                    let n: i64 = sqlx::query(fq::COUNT_RECOVERY_CODES)
                        .bind(user_id)
                        .fetch_one(&self.pool)
                        .await?
                        .try_get(0)?;
                    Ok(u32::try_from(n).unwrap_or(0))
                }

                async fn change_password(
                    &self,
                    user_id: &str,
                    password_hash: &str,
                    keep: &str,
                    audit: &AuditEntry,
                    now: Timestamp,
                ) -> StoreResult<Vec<String>> {
                    let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                    let done = sqlx::query(fq::SET_PASSWORD)
                        .bind(user_id)
                        .bind(password_hash)
                        .execute(&mut *tx)
                        .await?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::NotFound(format!("user {user_id:?}")));
                    }
                    let rows = sqlx::query(fq::DELETE_OTHER_SESSIONS)
                        .bind(user_id)
                        .bind(keep)
                        .fetch_all(&mut *tx)
                        .await?;
                    let ended = rows
                        .iter()
                        .map(|r| r.try_get::<String, _>(0))
                        .collect::<Result<Vec<_>, _>>()?;
                    let mut audit = audit.clone();
                    audit.after = Some(serde_json::json!({ "sessions_ended": ended.len() }));
                    Self::factor_change_in(&mut tx, user_id, &audit, now).await?;
                    tx.commit().await?;
                    Ok(ended)
                }

                async fn insert_challenge(&self, c: &LoginChallenge) -> StoreResult<()> {
                    sqlx::query(fq::INSERT_CHALLENGE)
                        .bind(&c.token_hash)
                        .bind(&c.user_id)
                        .bind(c.created_at)
                        .bind(c.expires_at)
                        .bind(&c.state)
                        .execute(&self.pool)
                        .await?;
                    Ok(())
                }

                async fn challenge(
                    &self,
                    token_hash: &str,
                    now: Timestamp,
                ) -> StoreResult<Option<LoginChallenge>> {
                    let row = sqlx::query(fq::CHALLENGE)
                        .bind(token_hash)
                        .bind(now)
                        .fetch_optional(&self.pool)
                        .await?;
                    row.map(|r| {
                        Ok(LoginChallenge {
                            token_hash: r.try_get(0)?,
                            user_id: r.try_get(1)?,
                            created_at: r.try_get(2)?,
                            expires_at: r.try_get(3)?,
                            state: r.try_get(4)?,
                        })
                    })
                    .transpose()
                }

                async fn set_challenge_state(
                    &self,
                    token_hash: &str,
                    state: Option<&str>,
                ) -> StoreResult<()> {
                    sqlx::query(fq::SET_CHALLENGE_STATE)
                        .bind(token_hash)
                        .bind(state)
                        .execute(&self.pool)
                        .await?;
                    Ok(())
                }

                async fn delete_challenge(
                    &self,
                    token_hash: &str,
                    now: Timestamp,
                ) -> StoreResult<()> {
                    sqlx::query(fq::DELETE_CHALLENGE)
                        .bind(token_hash)
                        .bind(now)
                        .execute(&self.pool)
                        .await?;
                    Ok(())
                }
            }
        };
    };
}
