//! `impl Store` for a pool of one sqlx database, written once and stamped out for SQLite
//! and PostgreSQL by `sql_store!`. Import and export live in `import_impl.rs` and
//! `export_impl.rs`; the SQL in `queries.rs`.

/// `sql_store!(StoreType, DB, "kind", begin_write, begin_snapshot, audit_exists)`:
/// `StoreType` has a `pool: sqlx::Pool<DB>` field; `begin_write` opens write transactions,
/// `begin_snapshot` a read-only transaction that sees one snapshot throughout, and
/// `audit_exists` counts the `audit_log` tables the connection can see (0 or 1). The store
/// type also defines `NOTIFY` and `open_change_listener` (see `sql_changes!`).
macro_rules! sql_store {
    (
        $store:ident,
        $db:ty,
        $kind:literal,
        $begin_write:literal,
        $begin_snapshot:literal,
        $audit_exists:literal
    ) => {
        const _: () = {
            use async_trait::async_trait;
            use sqlx::Row;

            use $crate::directory::audit::{
                AuditActor, AuditEntry, AuditFilter, AuditRecord, AuditVerification,
            };
            use $crate::directory::changes::{Change, ChangeTarget, StatusChange};
            use $crate::directory::data::{DirectoryData, ImportCounts};
            use $crate::directory::model::{
                AccountGrant, Amr, DirectoryStats, Identity, OrgRef, OrgStatus, SessionRecord,
                Timestamp, UserRecord, UserStatus,
            };
            use $crate::directory::review::{ReviewParams, ReviewRow};
            use $crate::directory::sql::{migrator, plan, queries as q, rows};
            use $crate::directory::store::{ChangeListener, Store, StoreResult};
            use $crate::directory::usage::{UsageFilter, UsageRow, UsageTotal};

            type DbRow = <$db as sqlx::Database>::Row;

            impl $store {
                const BEGIN_WRITE: &'static str = $begin_write;
                const BEGIN_SNAPSHOT: &'static str = $begin_snapshot;
                const AUDIT_EXISTS: &'static str = $audit_exists;

                /// One text column of every row, byte-order sorted and deduplicated.
                async fn names(&self, sql: &'static str, key: &str) -> StoreResult<Vec<String>> {
                    let rows = sqlx::query(sql).bind(key).fetch_all(&self.pool).await?;
                    let names = rows.iter().map(|r| r.try_get::<String, _>(0));
                    Ok(rows::sorted(names.collect::<Result<_, _>>()?))
                }

                fn identity_head(row: &DbRow) -> StoreResult<Identity> {
                    let org = OrgRef {
                        id: row.try_get(3)?,
                        name: row.try_get(4)?,
                        org_type: row.try_get(5)?,
                        status: rows::org_status(row.try_get(6)?)?,
                        mfa_required: row.try_get::<i64, _>(7)? != 0,
                    };
                    let factors: i64 = row.try_get(8)?;
                    Ok(Identity {
                        user_id: row.try_get(0)?,
                        email: row.try_get(1)?,
                        status: rows::user_status(row.try_get(2)?)?,
                        org,
                        roles: Vec::new(),
                        permissions: Vec::new(),
                        grants: Vec::new(),
                        second_factors: rows::count_u32("factors", factors)?,
                    })
                }

                async fn account_grants(&self, user_id: &str) -> StoreResult<Vec<AccountGrant>> {
                    let rows = sqlx::query(q::USER_GRANTS)
                        .bind(user_id)
                        .fetch_all(&self.pool)
                        .await?;
                    let mut grants = rows
                        .iter()
                        .map(Self::account_grant)
                        .collect::<StoreResult<Vec<_>>>()?;
                    grants.sort_unstable_by(|a, b| a.account.cmp(&b.account));
                    Ok(grants)
                }

                fn account_grant(row: &DbRow) -> StoreResult<AccountGrant> {
                    Ok(AccountGrant {
                        account: row.try_get(0)?,
                        level: rows::account_level(row.try_get(1)?)?,
                        expires_at: row.try_get(2)?,
                    })
                }

                fn user_record(row: &DbRow) -> StoreResult<UserRecord> {
                    Ok(UserRecord {
                        id: row.try_get(0)?,
                        email: row.try_get(1)?,
                        org_id: row.try_get(2)?,
                        roles: Vec::new(),
                        status: rows::user_status(row.try_get(3)?)?,
                        password_hash: row.try_get(4)?,
                        failed_logins: rows::count_u32("failed_logins", row.try_get(5)?)?,
                        locked_until: row.try_get(6)?,
                        last_login_at: row.try_get(7)?,
                        last_seen_at: row.try_get(8)?,
                        created_at: row.try_get(9)?,
                    })
                }

                fn session_record(row: &DbRow) -> StoreResult<SessionRecord> {
                    Ok(SessionRecord {
                        id_hash: row.try_get(0)?,
                        user_id: row.try_get(1)?,
                        created_at: row.try_get(2)?,
                        last_seen_at: row.try_get(3)?,
                        expires_at: row.try_get(4)?,
                        amr: Amr::parse(row.try_get(5)?),
                    })
                }

                /// Runs `sql` with each `(key, time)` pair in one transaction.
                async fn touch_all(
                    &self,
                    sql: &'static str,
                    seen: &[(String, Timestamp)],
                ) -> StoreResult<()> {
                    if seen.is_empty() {
                        return Ok(());
                    }
                    let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                    for (key, at) in seen {
                        sqlx::query(sql)
                            .bind(key)
                            .bind(*at)
                            .execute(&mut *tx)
                            .await?;
                    }
                    Ok(tx.commit().await?)
                }
            }

            #[async_trait]
            impl Store for $store {
                fn kind(&self) -> &'static str {
                    $kind
                }

                async fn migrate(&self) -> StoreResult<()> {
                    Ok(migrator().await?.run(&self.pool).await?)
                }

                async fn ping(&self) -> StoreResult<()> {
                    sqlx::query(q::PING).execute(&self.pool).await?;
                    Ok(())
                }

                async fn identity(&self, user_id: &str) -> StoreResult<Option<Identity>> {
                    let row = sqlx::query(q::IDENTITY_USER)
                        .bind(user_id)
                        .fetch_optional(&self.pool)
                        .await?;
                    let Some(row) = row else {
                        return Ok(None);
                    };
                    let mut identity = Self::identity_head(&row)?;
                    identity.roles = self.names(q::USER_ROLES, user_id).await?;
                    identity.permissions = self.names(q::USER_PERMISSIONS, user_id).await?;
                    identity.grants = self.account_grants(user_id).await?;
                    Ok(Some(identity))
                }

                async fn user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>> {
                    let email = plan::lower_email(email);
                    let row = sqlx::query(q::USER_BY_EMAIL)
                        .bind(&email)
                        .fetch_optional(&self.pool)
                        .await?;
                    let Some(row) = row else {
                        return Ok(None);
                    };
                    let mut user = Self::user_record(&row)?;
                    user.roles = self.names(q::USER_ROLES, &user.id).await?;
                    Ok(Some(user))
                }

                async fn record_login_failure(
                    &self,
                    user_id: &str,
                    max_failures: u32,
                    lock_until: Timestamp,
                    audit: &AuditEntry,
                    notice: Option<&$crate::directory::mail::OutgoingMail>,
                    now: Timestamp,
                ) -> StoreResult<bool> {
                    let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                    let row = sqlx::query(q::LOGIN_FAILURE)
                        .bind(user_id)
                        .bind(i64::from(max_failures))
                        .bind(lock_until)
                        .fetch_optional(&mut *tx)
                        .await?;
                    // The count only returns to zero when this failure locked the account.
                    let count = row.map(|r| r.try_get::<i64, _>(0)).transpose()?;
                    let locked = count == Some(0);
                    let mut audit = audit.clone();
                    audit.after = count.map(|n| match locked {
                        true => serde_json::json!({"failed_logins": 0, "locked_until": lock_until}),
                        false => serde_json::json!({"failed_logins": n}),
                    });
                    Self::append_audit_in(&mut tx, &audit, now).await?;
                    if let (true, Some(mail)) = (locked, notice) {
                        Self::enqueue_mail_in(&mut tx, mail, now).await?;
                    }
                    tx.commit().await?;
                    Ok(locked)
                }

                async fn record_login_success(
                    &self,
                    user_id: &str,
                    now: Timestamp,
                    audit: &AuditEntry,
                ) -> StoreResult<()> {
                    let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                    sqlx::query(q::LOGIN_SUCCESS)
                        .bind(user_id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    Self::append_audit_in(&mut tx, audit, now).await?;
                    Ok(tx.commit().await?)
                }

                async fn touch_users(&self, seen: &[(String, Timestamp)]) -> StoreResult<()> {
                    self.touch_all(q::TOUCH_USER, seen).await
                }

                async fn insert_session(&self, s: &SessionRecord) -> StoreResult<()> {
                    sqlx::query(q::INSERT_SESSION)
                        .bind(&s.id_hash)
                        .bind(&s.user_id)
                        .bind(s.created_at)
                        .bind(s.last_seen_at)
                        .bind(s.expires_at)
                        .bind(s.amr.stored())
                        .execute(&self.pool)
                        .await?;
                    Ok(())
                }

                async fn session(&self, id_hash: &str) -> StoreResult<Option<SessionRecord>> {
                    let row = sqlx::query(q::SESSION)
                        .bind(id_hash)
                        .fetch_optional(&self.pool)
                        .await?;
                    row.as_ref().map(Self::session_record).transpose()
                }

                async fn user_sessions(&self, user_id: &str) -> StoreResult<Vec<SessionRecord>> {
                    let rows = sqlx::query(q::USER_SESSIONS)
                        .bind(user_id)
                        .fetch_all(&self.pool)
                        .await?;
                    rows.iter().map(Self::session_record).collect()
                }

                async fn delete_session(&self, id_hash: &str) -> StoreResult<()> {
                    sqlx::query(q::DELETE_SESSION)
                        .bind(id_hash)
                        .execute(&self.pool)
                        .await?;
                    Ok(())
                }

                async fn delete_user_sessions(
                    &self,
                    user_id: &str,
                    now: Timestamp,
                ) -> StoreResult<Vec<String>> {
                    let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                    let rows = sqlx::query(q::DELETE_USER_SESSIONS)
                        .bind(user_id)
                        .fetch_all(&mut *tx)
                        .await?;
                    let ids = rows.iter().map(|r| r.try_get::<String, _>(0));
                    let ids = rows::sorted(ids.collect::<Result<_, _>>()?);
                    if !ids.is_empty() {
                        let target = ChangeTarget::User(user_id.to_string());
                        Self::record_changes_in(&mut tx, vec![target], now).await?;
                    }
                    tx.commit().await?;
                    Ok(ids)
                }

                async fn touch_sessions(&self, seen: &[(String, Timestamp)]) -> StoreResult<()> {
                    self.touch_all(q::TOUCH_SESSION, seen).await
                }

                async fn delete_expired_sessions(
                    &self,
                    idle_before: Timestamp,
                    now: Timestamp,
                ) -> StoreResult<u64> {
                    let query = sqlx::query(q::DELETE_EXPIRED_SESSIONS)
                        .bind(idle_before)
                        .bind(now);
                    Ok(query.execute(&self.pool).await?.rows_affected())
                }

                async fn import(
                    &self,
                    data: &DirectoryData,
                    now: Timestamp,
                    dry_run: bool,
                ) -> StoreResult<ImportCounts> {
                    self.run_import(data, now, dry_run).await
                }

                async fn export(&self, with_secrets: bool) -> StoreResult<DirectoryData> {
                    self.run_export(with_secrets).await
                }

                async fn stats(
                    &self,
                    now: Timestamp,
                    windows: &[i64],
                ) -> StoreResult<DirectoryStats> {
                    self.run_stats(now, windows).await
                }

                async fn review(&self, params: &ReviewParams) -> StoreResult<Vec<ReviewRow>> {
                    self.run_review(params).await
                }

                async fn inactive_users(&self, cutoff: Timestamp) -> StoreResult<Vec<String>> {
                    let rows = sqlx::query(q::INACTIVE_USERS)
                        .bind(cutoff)
                        .fetch_all(&self.pool)
                        .await?;
                    let ids = rows.iter().map(|r| r.try_get::<String, _>(0));
                    Ok(rows::sorted(ids.collect::<Result<_, _>>()?))
                }

                async fn append_audit(
                    &self,
                    entry: &AuditEntry,
                    now: Timestamp,
                ) -> StoreResult<AuditRecord> {
                    self.run_append_audit(entry, now).await
                }

                async fn audit_list(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditRecord>> {
                    self.run_audit_list(filter).await
                }

                async fn audit_verify(&self) -> StoreResult<AuditVerification> {
                    self.run_audit_verify().await
                }

                async fn set_user_status(
                    &self,
                    user_id: &str,
                    status: UserStatus,
                    actor: &AuditActor,
                    now: Timestamp,
                ) -> StoreResult<StatusChange> {
                    self.run_set_user_status(user_id, status, actor, now).await
                }

                async fn set_org_status(
                    &self,
                    org_id: &str,
                    status: OrgStatus,
                    actor: &AuditActor,
                    now: Timestamp,
                ) -> StoreResult<StatusChange> {
                    self.run_set_org_status(org_id, status, actor, now).await
                }

                async fn record_changes(
                    &self,
                    targets: &[ChangeTarget],
                    now: Timestamp,
                ) -> StoreResult<i64> {
                    self.run_record_changes(targets, now).await
                }

                async fn changes_since(&self, after: i64, limit: i64) -> StoreResult<Vec<Change>> {
                    self.run_changes_since(after, limit).await
                }

                async fn latest_change_seq(&self) -> StoreResult<i64> {
                    self.run_latest_change_seq().await
                }

                async fn prune_changes(&self, older_than: Timestamp) -> StoreResult<u64> {
                    self.run_prune_changes(older_than).await
                }

                async fn change_listener(&self) -> StoreResult<Option<Box<dyn ChangeListener>>> {
                    self.open_change_listener().await
                }

                async fn add_usage(&self, rows: &[UsageRow]) -> StoreResult<()> {
                    self.run_add_usage(rows).await
                }

                async fn usage(&self, filter: &UsageFilter) -> StoreResult<Vec<UsageTotal>> {
                    self.run_usage(filter).await
                }

                async fn prune_usage(&self, before_day: i64) -> StoreResult<u64> {
                    self.run_prune_usage(before_day).await
                }
            }
        };
        sql_import!($store, $db);
        sql_export!($store, $db);
        sql_review!($store, $db);
        sql_audit!($store, $db);
        sql_changes!($store, $db);
        sql_lifecycle!($store, $db);
        sql_usage!($store, $db);
        sql_factors!($store, $db);
        sql_mail!($store, $db);
        sql_sso!($store, $db);
    };
}
