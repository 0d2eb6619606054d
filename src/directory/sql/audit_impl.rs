//! The audit chain for one sqlx database, stamped out by `sql_audit!`: appending inside a
//! caller's transaction, listing, and walking the whole chain for `audit verify`.

/// `sql_audit!(Store type, DB)`: the inherent `append_audit_in` every audited change calls
/// inside its own transaction, and `run_append_audit`, `run_audit_list` and
/// `run_audit_verify` used by `impl Store`. Needs the store's `BEGIN_WRITE`,
/// `BEGIN_SNAPSHOT` and `AUDIT_EXISTS` (see `sql_store!`).
macro_rules! sql_audit {
    ($store:ident, $db:ty) => {
        const _: () = {
            use sqlx::Row;

            use $crate::directory::audit::{
                AuditEntry, AuditFilter, AuditRecord, AuditRow, AuditVerification, ChainCheck,
            };
            use $crate::directory::model::Timestamp;
            use $crate::directory::sql::queries as q;
            use $crate::directory::store::{StoreError, StoreResult};

            type Conn = <$db as sqlx::Database>::Connection;
            type DbRow = <$db as sqlx::Database>::Row;

            /// Records per page of `audit verify`: memory stays flat however long the log.
            const VERIFY_PAGE: i64 = 1000;

            fn audit_row(row: &DbRow) -> StoreResult<AuditRow> {
                Ok(AuditRow {
                    seq: row.try_get(0)?,
                    ts: row.try_get(1)?,
                    actor: row.try_get(2)?,
                    actor_email: row.try_get(3)?,
                    ip: row.try_get(4)?,
                    request_id: row.try_get(5)?,
                    action: row.try_get(6)?,
                    target: row.try_get(7)?,
                    org_id: row.try_get(8)?,
                    outcome: row.try_get(9)?,
                    reason: row.try_get(10)?,
                    before: row.try_get(11)?,
                    after: row.try_get(12)?,
                    prev_hash: row.try_get(13)?,
                    hash: row.try_get(14)?,
                })
            }

            impl $store {
                /// Append `entry` as the next record of the chain, inside the transaction
                /// of `conn`: the change being audited and its record commit together or
                /// not at all, and a rolled-back transaction leaves no gap in the seqs.
                ///
                /// Call it last in the transaction, after the change's own writes. It
                /// locks the head row until the transaction ends (on PostgreSQL its
                /// UPDATE's row lock; on SQLite the write transaction, which must be
                /// opened with `BEGIN_WRITE`), so concurrent appenders take turns and
                /// every lock the change needs is taken before this one.
                pub(crate) async fn append_audit_in(
                    conn: &mut Conn,
                    entry: &AuditEntry,
                    now: Timestamp,
                ) -> StoreResult<AuditRecord> {
                    let claimed = sqlx::query(q::AUDIT_CLAIM_SEQ)
                        .fetch_optional(&mut *conn)
                        .await?;
                    let Some(claimed) = claimed else {
                        return Err(StoreError::Unavailable(
                            "the audit head is missing; run `partnergate audit verify`".into(),
                        ));
                    };
                    let row =
                        AuditRow::chained(claimed.try_get(0)?, now, entry, claimed.try_get(1)?);
                    Self::insert_audit_row(conn, &row).await?;
                    sqlx::query(q::AUDIT_SET_HEAD_HASH)
                        .bind(row.seq)
                        .bind(&row.hash)
                        .execute(&mut *conn)
                        .await?;
                    row.into_record()
                }

                async fn insert_audit_row(conn: &mut Conn, row: &AuditRow) -> StoreResult<()> {
                    sqlx::query(q::AUDIT_INSERT)
                        .bind(row.seq)
                        .bind(row.ts)
                        .bind(&row.actor)
                        .bind(&row.actor_email)
                        .bind(&row.ip)
                        .bind(&row.request_id)
                        .bind(&row.action)
                        .bind(&row.target)
                        .bind(&row.org_id)
                        .bind(&row.outcome)
                        .bind(&row.reason)
                        .bind(&row.before)
                        .bind(&row.after)
                        .bind(&row.prev_hash)
                        .bind(&row.hash)
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                }

                async fn run_append_audit(
                    &self,
                    entry: &AuditEntry,
                    now: Timestamp,
                ) -> StoreResult<AuditRecord> {
                    let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                    let record = Self::append_audit_in(&mut tx, entry, now).await?;
                    tx.commit().await?;
                    Ok(record)
                }

                async fn run_audit_list(
                    &self,
                    filter: &AuditFilter,
                ) -> StoreResult<Vec<AuditRecord>> {
                    let rows = sqlx::query(q::AUDIT_LIST)
                        .bind(filter.after_seq.unwrap_or(0))
                        .bind(filter.since)
                        .bind(filter.until)
                        .bind(filter.actor.as_deref())
                        .bind(filter.org_id.as_deref())
                        .bind(filter.action_prefix.as_deref())
                        .bind(filter.effective_limit())
                        .bind(filter.actor_email.as_deref())
                        .fetch_all(&self.pool)
                        .await?;
                    rows.iter().map(|r| audit_row(r)?.into_record()).collect()
                }

                /// Walks the chain page by page in one read snapshot, so appends running
                /// meanwhile are neither half-seen nor mistaken for tampering.
                async fn run_audit_verify(&self) -> StoreResult<AuditVerification> {
                    let mut tx = self.pool.begin_with(Self::BEGIN_SNAPSHOT).await?;
                    let present: i64 = sqlx::query_scalar(Self::AUDIT_EXISTS)
                        .fetch_one(&mut *tx)
                        .await?;
                    if present == 0 {
                        return Err(StoreError::Unavailable(
                            "this directory has no audit log yet (it is created by the \
                             migrations `partnergate run` and `directory import` apply)"
                                .into(),
                        ));
                    }
                    let mut check = ChainCheck::default();
                    // From the lowest possible seq: a row planted at 0 or below is found too.
                    let mut after = i64::MIN;
                    loop {
                        let page = sqlx::query(q::AUDIT_PAGE)
                            .bind(after)
                            .bind(VERIFY_PAGE)
                            .fetch_all(&mut *tx)
                            .await?;
                        for row in &page {
                            let row = audit_row(row)?;
                            check.push(&row);
                            after = row.seq;
                        }
                        if (page.len() as i64) < VERIFY_PAGE {
                            break;
                        }
                    }
                    let head = sqlx::query(q::AUDIT_HEAD).fetch_optional(&mut *tx).await?;
                    let head = match head {
                        Some(r) => Some((r.try_get(0)?, r.try_get(1)?)),
                        None => None,
                    };
                    tx.rollback().await?;
                    Ok(check.finish(head))
                }
            }
        };
    };
}
