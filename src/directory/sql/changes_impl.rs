//! Directory changes for one sqlx database, stamped out by `sql_changes!`: recording them
//! inside a writer's transaction, reading them for the watchers, and the two status
//! changes (user, org) that end sessions, audit and record a change in one transaction.

/// `sql_changes!(Store type, DB)`: the inherent `record_changes_in` every writer calls
/// inside its own transaction, and the `run_*` methods `impl Store` forwards to. Needs the
/// store's `BEGIN_WRITE` (see `sql_store!`) and `NOTIFY` (the statement that announces a
/// change at commit, or `None`).
macro_rules! sql_changes {
    ($store:ident, $db:ty) => {
        const _: () = {
            use serde_json::json;
            use sqlx::Row;

            use $crate::directory::audit::AuditActor;
            use $crate::directory::changes::{
                self, Change, ChangeTarget, StatusChange, NOTIFY_CHANNEL,
            };
            use $crate::directory::model::{OrgStatus, Timestamp, UserStatus};
            use $crate::directory::sql::queries as q;
            use $crate::directory::store::{StoreError, StoreResult};

            type Conn = <$db as sqlx::Database>::Connection;

            /// What a user or org status change did, for its change records and audit.
            struct StatusDone {
                targets: Vec<ChangeTarget>,
                action: &'static str,
                target: String,
                org_id: String,
                before: String,
                after: &'static str,
                sessions_ended: u64,
                /// More of the state after (offboarding: users disabled, grants revoked).
                details: Vec<(&'static str, serde_json::Value)>,
            }

            impl $store {
                /// Append `targets` (deduplicated) as the next changes, inside the
                /// transaction of `conn`, and announce them at commit where the database
                /// can. Returns the last seq, `None` when there was nothing to record.
                ///
                /// Call it after the change's own writes and before `append_audit_in`: it
                /// locks the change head until the transaction ends, and every writer
                /// takes the two heads in that order.
                pub(crate) async fn record_changes_in(
                    conn: &mut Conn,
                    targets: Vec<ChangeTarget>,
                    now: Timestamp,
                ) -> StoreResult<Option<i64>> {
                    let targets = changes::normalized(targets);
                    if targets.is_empty() {
                        return Ok(None);
                    }
                    let n = targets.len() as i64;
                    let last: i64 = sqlx::query_scalar(q::CHANGE_CLAIM_SEQS)
                        .bind(n)
                        .fetch_optional(&mut *conn)
                        .await?
                        .ok_or_else(|| {
                            StoreError::Unavailable("the directory change head is missing".into())
                        })?;
                    for (seq, target) in (last - n + 1..).zip(&targets) {
                        let (kind, id) = target.parts();
                        sqlx::query(q::CHANGE_INSERT)
                            .bind(seq)
                            .bind(now)
                            .bind(kind)
                            .bind(id)
                            .execute(&mut *conn)
                            .await?;
                    }
                    if let Some(notify) = Self::NOTIFY {
                        sqlx::query(notify)
                            .bind(NOTIFY_CHANNEL)
                            .bind(last.to_string())
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(Some(last))
                }

                async fn run_record_changes(
                    &self,
                    targets: &[ChangeTarget],
                    now: Timestamp,
                ) -> StoreResult<i64> {
                    let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                    let last = Self::record_changes_in(&mut tx, targets.to_vec(), now).await?;
                    let last = match last {
                        Some(last) => last,
                        None => {
                            sqlx::query_scalar(q::CHANGE_LATEST)
                                .fetch_one(&mut *tx)
                                .await?
                        }
                    };
                    tx.commit().await?;
                    Ok(last)
                }

                async fn run_changes_since(
                    &self,
                    after: i64,
                    limit: i64,
                ) -> StoreResult<Vec<Change>> {
                    let rows = sqlx::query(q::CHANGES_SINCE)
                        .bind(after)
                        .bind(limit)
                        .fetch_all(&self.pool)
                        .await?;
                    rows.iter()
                        .map(|r| {
                            let kind: String = r.try_get(2)?;
                            Ok(Change {
                                seq: r.try_get(0)?,
                                ts: r.try_get(1)?,
                                target: ChangeTarget::from_parts(&kind, r.try_get(3)?),
                            })
                        })
                        .collect()
                }

                async fn run_latest_change_seq(&self) -> StoreResult<i64> {
                    let seq = sqlx::query_scalar(q::CHANGE_LATEST)
                        .fetch_optional(&self.pool)
                        .await?;
                    Ok(seq.unwrap_or(0))
                }

                async fn run_prune_changes(&self, older_than: Timestamp) -> StoreResult<u64> {
                    let query = sqlx::query(q::CHANGES_PRUNE).bind(older_than);
                    Ok(query.execute(&self.pool).await?.rows_affected())
                }

                async fn run_set_user_status(
                    &self,
                    user_id: &str,
                    status: UserStatus,
                    actor: &AuditActor,
                    now: Timestamp,
                ) -> StoreResult<StatusChange> {
                    let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                    let (before, org_id) = Self::lock_user(&mut tx, user_id).await?;
                    // A disabled user holds no seat: taking one back must fit under the cap.
                    if before == UserStatus::Disabled.as_str() && status != UserStatus::Disabled {
                        Self::take_seat(&mut tx, &org_id).await?;
                    }
                    sqlx::query(q::SET_USER_STATUS)
                        .bind(user_id)
                        .bind(status.as_str())
                        .execute(&mut *tx)
                        .await?;
                    let sessions_ended = if status == UserStatus::Active {
                        0
                    } else {
                        let query = sqlx::query(q::DELETE_USER_SESSIONS).bind(user_id);
                        query.fetch_all(&mut *tx).await?.len() as u64
                    };
                    let done = StatusDone {
                        targets: vec![ChangeTarget::User(user_id.to_string())],
                        action: changes::user_status_action(status),
                        target: format!("user:{user_id}"),
                        org_id,
                        before,
                        after: status.as_str(),
                        sessions_ended,
                        details: Vec::new(),
                    };
                    let change = Self::finish_status_change(&mut tx, done, actor, now).await?;
                    tx.commit().await?;
                    Ok(change)
                }

                /// Offboarding, inside its transaction: every member disabled, every
                /// grant of the org and every open invitation revoked. The records stay.
                async fn offboard_members(
                    conn: &mut Conn,
                    org_id: &str,
                    targets: &mut Vec<ChangeTarget>,
                    now: Timestamp,
                ) -> StoreResult<Vec<(&'static str, serde_json::Value)>> {
                    use $crate::directory::sql::lifecycle_queries as lq;
                    let disabled = sqlx::query(lq::DISABLE_ORG_USERS)
                        .bind(org_id)
                        .fetch_all(&mut *conn)
                        .await?;
                    for row in &disabled {
                        targets.push(ChangeTarget::User(row.try_get(0)?));
                    }
                    let revoked = sqlx::query(lq::DELETE_ORG_GRANTS)
                        .bind(org_id)
                        .fetch_all(&mut *conn)
                        .await?;
                    let mut grants = Vec::with_capacity(revoked.len());
                    for row in &revoked {
                        let user: String = row.try_get(0)?;
                        let account: String = row.try_get(1)?;
                        let level: String = row.try_get(2)?;
                        let expires: Option<i64> = row.try_get(3)?;
                        grants.push(json!({
                            "user": user, "account": account, "level": level, "expires_at": expires,
                        }));
                        targets.push(ChangeTarget::User(user));
                    }
                    let invitations = sqlx::query(lq::REVOKE_ORG_INVITATIONS)
                        .bind(org_id)
                        .bind(now)
                        .execute(&mut *conn)
                        .await?
                        .rows_affected();
                    Ok(vec![
                        ("users_disabled", json!(disabled.len())),
                        ("grants_revoked", json!(grants)),
                        ("invitations_revoked", json!(invitations)),
                    ])
                }

                async fn run_set_org_status(
                    &self,
                    org_id: &str,
                    status: OrgStatus,
                    actor: &AuditActor,
                    now: Timestamp,
                ) -> StoreResult<StatusChange> {
                    let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                    let before: Option<String> = sqlx::query_scalar(q::LOCK_ORG_STATUS)
                        .bind(org_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    let Some(before) = before else {
                        return Err(StoreError::NotFound(format!("no org {org_id:?}")));
                    };
                    sqlx::query(q::SET_ORG_STATUS)
                        .bind(org_id)
                        .bind(status.as_str())
                        .execute(&mut *tx)
                        .await?;
                    let mut targets = vec![ChangeTarget::Org(org_id.to_string())];
                    let mut sessions_ended = 0;
                    if status != OrgStatus::Active {
                        let rows = sqlx::query(q::DELETE_ORG_SESSIONS)
                            .bind(org_id)
                            .fetch_all(&mut *tx)
                            .await?;
                        sessions_ended = rows.len() as u64;
                        for row in &rows {
                            targets.push(ChangeTarget::User(row.try_get(0)?));
                        }
                    }
                    let details = if status == OrgStatus::Offboarded {
                        Self::offboard_members(&mut tx, org_id, &mut targets, now).await?
                    } else {
                        Vec::new()
                    };
                    let done = StatusDone {
                        targets,
                        details,
                        action: changes::org_status_action(OrgStatus::parse(&before), status),
                        target: format!("org:{org_id}"),
                        org_id: org_id.to_string(),
                        before,
                        after: status.as_str(),
                        sessions_ended,
                    };
                    let change = Self::finish_status_change(&mut tx, done, actor, now).await?;
                    tx.commit().await?;
                    Ok(change)
                }

                /// The common end of a status change, after its own writes and inside
                /// its transaction: record the targets for the watchers, then append the
                /// audit record (change head before audit head, as every writer does).
                async fn finish_status_change(
                    conn: &mut Conn,
                    done: StatusDone,
                    actor: &AuditActor,
                    now: Timestamp,
                ) -> StoreResult<StatusChange> {
                    let change_seq = Self::record_changes_in(conn, done.targets, now)
                        .await?
                        .unwrap_or_default();
                    let mut after =
                        json!({"status": done.after, "sessions_ended": done.sessions_ended});
                    for (key, value) in done.details {
                        after[key] = value;
                    }
                    let entry = actor.entry(
                        done.action,
                        done.target,
                        Some(done.org_id),
                        json!({"status": done.before}),
                        after,
                    );
                    let record = Self::append_audit_in(conn, &entry, now).await?;
                    Ok(StatusChange {
                        before: done.before,
                        after: done.after.to_string(),
                        sessions_ended: done.sessions_ended,
                        audit_seq: record.seq,
                        change_seq,
                    })
                }
            }
        };
    };
}
