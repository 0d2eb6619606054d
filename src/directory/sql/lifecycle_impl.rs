//! `impl LifecycleStore` for one sqlx database, stamped out by `sql_lifecycle!`. Each
//! write is one transaction: its own rows, then the directory change (`record_changes_in`),
//! then the audit record (`append_audit_in`), in that order like every writer.

/// `sql_lifecycle!(Store type, DB)`.
macro_rules! sql_lifecycle {
    ($store:ident, $db:ty) => {
        const _: () = {
            use async_trait::async_trait;
            use serde_json::{json, Value};
            use sqlx::Row;

            use $crate::directory::audit::{AuditActor, AuditEntry};
            use $crate::directory::changes::ChangeTarget;
            use $crate::directory::data::{AccountEntry, RoleEntry};
            use $crate::directory::lifecycle::{
                GrantChange, Invitation, LifecycleStore, NewInvitation, NewOrg, OrgDetail,
                OrgPatch, ReviewDecision, ReviewDecisionRecord,
            };
            use $crate::directory::model::{Grant, OrgStatus, Timestamp, UserStatus};
            use $crate::directory::sql::{lifecycle_queries as lq, queries as q, rows};
            use $crate::directory::store::{StoreError, StoreResult};

            type Conn = <$db as sqlx::Database>::Connection;
            type DbRow = <$db as sqlx::Database>::Row;

            fn org_detail(row: &DbRow, roles: Option<Vec<String>>) -> StoreResult<OrgDetail> {
                let max_users: Option<i64> = row.try_get(4)?;
                let restricted: i64 = row.try_get(8)?;
                let seats: i64 = row.try_get(9)?;
                Ok(OrgDetail {
                    id: row.try_get(0)?,
                    name: row.try_get(1)?,
                    org_type: row.try_get(2)?,
                    status: rows::org_status(row.try_get(3)?)?,
                    max_users: max_users
                        .map(|n| rows::count_u32("max_users", n))
                        .transpose()?,
                    max_grant_ttl: row.try_get(5)?,
                    contact_email: row.try_get(6)?,
                    created_at: row.try_get(7)?,
                    allowed_roles: (restricted != 0).then(|| roles.unwrap_or_default()),
                    seats_used: rows::count_u32("seats", seats)?,
                    mfa_required: row.try_get::<i64, _>(10)? != 0,
                })
            }

            fn invitation(row: &DbRow, roles: Vec<String>) -> StoreResult<Invitation> {
                Ok(Invitation {
                    id: row.try_get(0)?,
                    user_id: row.try_get(1)?,
                    org_id: row.try_get(2)?,
                    org_name: row.try_get(3)?,
                    email: row.try_get(4)?,
                    roles,
                    created_by: row.try_get(5)?,
                    created_at: row.try_get(6)?,
                    expires_at: row.try_get(7)?,
                    used_at: row.try_get(8)?,
                    revoked_at: row.try_get(9)?,
                })
            }

            fn grant_json(g: &Grant) -> Value {
                json!({
                    "account": g.account_id,
                    "level": g.level.as_str(),
                    "expires_at": g.expires_at,
                })
            }

            fn grant_row(user_id: &str, account_id: &str, row: &DbRow) -> StoreResult<Grant> {
                Ok(Grant {
                    user_id: user_id.to_string(),
                    account_id: account_id.to_string(),
                    level: rows::account_level(row.try_get(0)?)?,
                    expires_at: row.try_get(1)?,
                })
            }

            impl $store {
                async fn org_in(conn: &mut Conn, id: &str) -> StoreResult<Option<OrgDetail>> {
                    let row = sqlx::query(lq::ORG_BY_ID)
                        .bind(id)
                        .fetch_optional(&mut *conn)
                        .await?;
                    let Some(row) = row else { return Ok(None) };
                    let roles = sqlx::query(lq::ORG_ROLES_OF)
                        .bind(id)
                        .fetch_all(&mut *conn)
                        .await?;
                    let roles = roles.iter().map(|r| r.try_get::<String, _>(1));
                    let roles = rows::sorted(roles.collect::<Result<_, _>>()?);
                    Ok(Some(org_detail(&row, Some(roles))?))
                }

                /// Check, under the org's row lock until the transaction ends, that the org
                /// has a free seat (`max_users` over every user but `disabled`);
                /// [`StoreError::Refused`] `seat_cap` when it has none.
                pub(crate) async fn take_seat(conn: &mut Conn, org_id: &str) -> StoreResult<()> {
                    sqlx::query(lq::LOCK_ORG)
                        .bind(org_id)
                        .fetch_optional(&mut *conn)
                        .await?;
                    let used: i64 = sqlx::query_scalar(lq::SEATS_USED)
                        .bind(org_id)
                        .fetch_one(&mut *conn)
                        .await?;
                    let cap: Option<i64> = sqlx::query_scalar(lq::ORG_MAX_USERS)
                        .bind(org_id)
                        .fetch_one(&mut *conn)
                        .await?;
                    match cap {
                        Some(cap) if used >= cap => Err(StoreError::Refused("seat_cap")),
                        _ => Ok(()),
                    }
                }

                /// Lock the user's row; its status and org. NotFound for an unknown id.
                pub(crate) async fn lock_user(
                    conn: &mut Conn,
                    user_id: &str,
                ) -> StoreResult<(String, String)> {
                    let row = sqlx::query(q::LOCK_USER_STATUS)
                        .bind(user_id)
                        .fetch_optional(&mut *conn)
                        .await?;
                    let Some(row) = row else {
                        return Err(StoreError::NotFound(format!("no user {user_id:?}")));
                    };
                    Ok((row.try_get(0)?, row.try_get(1)?))
                }

                async fn user_roles_in(conn: &mut Conn, user_id: &str) -> StoreResult<Vec<String>> {
                    let rows_ = sqlx::query(q::USER_ROLES)
                        .bind(user_id)
                        .fetch_all(&mut *conn)
                        .await?;
                    let names = rows_.iter().map(|r| r.try_get::<String, _>(0));
                    Ok(rows::sorted(names.collect::<Result<_, _>>()?))
                }

                /// Every name must be a defined role.
                async fn check_roles(conn: &mut Conn, roles: &[String]) -> StoreResult<()> {
                    let mut problems = Vec::new();
                    for role in roles {
                        let found = sqlx::query(lq::ROLE_EXISTS)
                            .bind(role)
                            .fetch_optional(&mut *conn)
                            .await?;
                        if found.is_none() {
                            problems.push(format!("unknown role {role:?}"));
                        }
                    }
                    match problems.is_empty() {
                        true => Ok(()),
                        false => Err(StoreError::Invalid(problems)),
                    }
                }

                async fn write_roles(
                    conn: &mut Conn,
                    user_id: &str,
                    roles: &[String],
                ) -> StoreResult<()> {
                    sqlx::query(q::CLEAR_USER_ROLES)
                        .bind(user_id)
                        .execute(&mut *conn)
                        .await?;
                    for role in rows::sorted(roles.to_vec()) {
                        sqlx::query(q::INSERT_USER_ROLE)
                            .bind(user_id)
                            .bind(role)
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                }

                async fn write_org_roles(
                    conn: &mut Conn,
                    org_id: &str,
                    roles: Option<&Vec<String>>,
                ) -> StoreResult<()> {
                    sqlx::query(lq::CLEAR_ORG_ROLES)
                        .bind(org_id)
                        .execute(&mut *conn)
                        .await?;
                    let Some(roles) = roles else { return Ok(()) };
                    Self::check_roles(conn, roles).await?;
                    for role in rows::sorted(roles.clone()) {
                        sqlx::query(lq::INSERT_ORG_ROLE)
                            .bind(org_id)
                            .bind(role)
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                }

                /// Record the change targets, then append the audit record: the end of
                /// every lifecycle write.
                async fn finish(
                    conn: &mut Conn,
                    targets: Vec<ChangeTarget>,
                    entry: AuditEntry,
                    now: Timestamp,
                ) -> StoreResult<()> {
                    Self::record_changes_in(conn, targets, now).await?;
                    Self::append_audit_in(conn, &entry, now).await?;
                    Ok(())
                }
            }

            #[async_trait]
            impl LifecycleStore for $store {
                async fn orgs(&self) -> StoreResult<Vec<OrgDetail>> {
                    let mut tx = self.pool.begin().await?;
                    let role_rows = sqlx::query(lq::ORG_ROLES_ALL).fetch_all(&mut *tx).await?;
                    let pairs = role_rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?)));
                    let mut roles = rows::grouped(pairs.collect::<StoreResult<_>>()?);
                    let org_rows = sqlx::query(lq::ORGS).fetch_all(&mut *tx).await?;
                    tx.rollback().await?;
                    org_rows
                        .iter()
                        .map(|row| {
                            let id: String = row.try_get(0)?;
                            org_detail(row, roles.remove(&id))
                        })
                        .collect()
                }

                async fn org(&self, id: &str) -> StoreResult<Option<OrgDetail>> {
                    let mut conn = self.pool.acquire().await?;
                    Self::org_in(&mut conn, id).await
                }

                async fn create_org(
                    &self,
                    org: &NewOrg,
                    actor: &AuditActor,
                    now: Timestamp,
                ) -> StoreResult<OrgDetail> {
                    let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                    let exists = sqlx::query(q::ORG_EXISTS)
                        .bind(&org.id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if exists.is_some() {
                        return Err(StoreError::Conflict(format!(
                            "org {:?} already exists",
                            org.id
                        )));
                    }
                    sqlx::query(lq::INSERT_ORG)
                        .bind(&org.id)
                        .bind(&org.name)
                        .bind(&org.org_type)
                        .bind(org.status.as_str())
                        .bind(org.max_users.map(i64::from))
                        .bind(org.max_grant_ttl)
                        .bind(&org.contact_email)
                        .bind(i64::from(org.allowed_roles.is_some()))
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    Self::write_org_roles(&mut tx, &org.id, org.allowed_roles.as_ref()).await?;
                    let detail = Self::org_in(&mut tx, &org.id)
                        .await?
                        .ok_or_else(|| StoreError::NotFound(format!("no org {:?}", org.id)))?;
                    let action = match org.status {
                        OrgStatus::Pending => "org.register",
                        _ => "org.create",
                    };
                    let target = format!("org:{}", org.id);
                    let after = detail.to_json();
                    let org_id = Some(org.id.clone());
                    Self::finish(
                        &mut tx,
                        vec![],
                        actor.entry(action, target, org_id, Value::Null, after),
                        now,
                    )
                    .await?;
                    tx.commit().await?;
                    Ok(detail)
                }

                async fn update_org(
                    &self,
                    id: &str,
                    patch: &OrgPatch,
                    actor: &AuditActor,
                    now: Timestamp,
                ) -> StoreResult<OrgDetail> {
                    let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                    let locked = sqlx::query(lq::LOCK_ORG)
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if locked.is_none() {
                        return Err(StoreError::NotFound(format!("no org {id:?}")));
                    }
                    let before = Self::org_in(&mut tx, id)
                        .await?
                        .ok_or_else(|| StoreError::NotFound(format!("no org {id:?}")))?;
                    let name = patch.name.clone().unwrap_or_else(|| before.name.clone());
                    let max_users = patch.max_users.unwrap_or(before.max_users);
                    let max_grant_ttl = patch.max_grant_ttl.unwrap_or(before.max_grant_ttl);
                    let mfa_required = patch.mfa_required.unwrap_or(before.mfa_required);
                    let allowed = match &patch.allowed_roles {
                        Some(a) => a.clone(),
                        None => before.allowed_roles.clone(),
                    };
                    sqlx::query(lq::UPDATE_ORG)
                        .bind(id)
                        .bind(&name)
                        .bind(max_users.map(i64::from))
                        .bind(max_grant_ttl)
                        .bind(i64::from(allowed.is_some()))
                        .bind(i64::from(mfa_required))
                        .execute(&mut *tx)
                        .await?;
                    if patch.allowed_roles.is_some() {
                        Self::write_org_roles(&mut tx, id, allowed.as_ref()).await?;
                    }
                    let after = Self::org_in(&mut tx, id)
                        .await?
                        .ok_or_else(|| StoreError::NotFound(format!("no org {id:?}")))?;
                    let targets = vec![ChangeTarget::Org(id.to_string())];
                    Self::finish(
                        &mut tx,
                        targets,
                        actor.entry(
                            "org.update",
                            format!("org:{id}"),
                            Some(id.to_string()),
                            before.to_json(),
                            after.to_json(),
                        ),
                        now,
                    )
                    .await?;
                    tx.commit().await?;
                    Ok(after)
                }

                async fn roles(&self) -> StoreResult<Vec<RoleEntry>> {
                    let mut conn = self.pool.acquire().await?;
                    Self::export_roles(&mut conn).await
                }

                async fn put_role(
                    &self,
                    role: &RoleEntry,
                    actor: &AuditActor,
                    now: Timestamp,
                ) -> StoreResult<()> {
                    let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                    let before = Self::export_roles(&mut tx)
                        .await?
                        .into_iter()
                        .find(|r| r.name == role.name);
                    sqlx::query(q::UPSERT_ROLE)
                        .bind(&role.name)
                        .bind(i64::from(role.delegable))
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(q::CLEAR_ROLE_PERMISSIONS)
                        .bind(&role.name)
                        .execute(&mut *tx)
                        .await?;
                    let permissions = rows::sorted(role.permissions.clone());
                    for p in &permissions {
                        sqlx::query(q::INSERT_ROLE_PERMISSION)
                            .bind(&role.name)
                            .bind(p)
                            .execute(&mut *tx)
                            .await?;
                    }
                    let before = before.map_or(Value::Null, |r| json!(r));
                    let after = json!({
                        "name": role.name,
                        "permissions": permissions,
                        "delegable": role.delegable,
                    });
                    let target = format!("role:{}", role.name);
                    Self::finish(
                        &mut tx,
                        vec![ChangeTarget::All],
                        actor.entry("role.put", target, None, before, after),
                        now,
                    )
                    .await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn accounts(&self) -> StoreResult<Vec<AccountEntry>> {
                    let mut conn = self.pool.acquire().await?;
                    Self::export_accounts(&mut conn).await
                }

                async fn put_account(
                    &self,
                    account: &AccountEntry,
                    actor: &AuditActor,
                    now: Timestamp,
                ) -> StoreResult<()> {
                    let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                    sqlx::query(q::UPSERT_ACCOUNT)
                        .bind(&account.id)
                        .bind(&account.name)
                        .execute(&mut *tx)
                        .await?;
                    let target = format!("account:{}", account.id);
                    Self::finish(
                        &mut tx,
                        vec![],
                        actor.entry("account.put", target, None, Value::Null, json!(account)),
                        now,
                    )
                    .await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn invite(
                    &self,
                    inv: &NewInvitation,
                    actor: &AuditActor,
                    now: Timestamp,
                ) -> StoreResult<Invitation> {
                    let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                    let status: Option<String> = sqlx::query_scalar(lq::LOCK_ORG)
                        .bind(&inv.org_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    let Some(status) = status else {
                        return Err(StoreError::NotFound(format!("no org {:?}", inv.org_id)));
                    };
                    if matches!(
                        OrgStatus::parse(&status),
                        Some(OrgStatus::Suspended | OrgStatus::Offboarded) | None
                    ) {
                        return Err(StoreError::Refused("org_inactive"));
                    }
                    Self::check_roles(&mut tx, &inv.roles).await?;
                    let existing = sqlx::query(lq::USER_BY_EMAIL_SHORT)
                        .bind(&inv.email)
                        .fetch_optional(&mut *tx)
                        .await?;
                    let mut targets = Vec::new();
                    let mut before = Value::Null;
                    let user_id = match existing {
                        Some(row) => {
                            let id: String = row.try_get(0)?;
                            let org: String = row.try_get(1)?;
                            let status: String = row.try_get(2)?;
                            if org != inv.org_id || status != UserStatus::Invited.as_str() {
                                // Nothing about the other user (org, status) leaks.
                                let _ = (org, status);
                                return Err(StoreError::Conflict(format!(
                                    "{:?} cannot be invited: the email belongs to an existing user",
                                    inv.email
                                )));
                            }
                            before = json!({"roles": Self::user_roles_in(&mut tx, &id).await?});
                            sqlx::query(lq::REVOKE_OPEN_INVITATIONS)
                                .bind(&id)
                                .bind(now)
                                .execute(&mut *tx)
                                .await?;
                            targets.push(ChangeTarget::User(id.clone()));
                            id
                        }
                        None => {
                            Self::take_seat(&mut tx, &inv.org_id).await?;
                            let id = rows::new_user_id();
                            sqlx::query(lq::INSERT_INVITED_USER)
                                .bind(&id)
                                .bind(&inv.email)
                                .bind(&inv.org_id)
                                .bind(now)
                                .execute(&mut *tx)
                                .await?;
                            id
                        }
                    };
                    Self::write_roles(&mut tx, &user_id, &inv.roles).await?;
                    let inv_id = format!("inv-{:016x}", rand::random::<u64>());
                    sqlx::query(lq::INSERT_INVITATION)
                        .bind(&inv_id)
                        .bind(&inv.token_hash)
                        .bind(&user_id)
                        .bind(&inv.org_id)
                        .bind(&inv.email)
                        .bind(&actor.actor)
                        .bind(now)
                        .bind(inv.expires_at)
                        .execute(&mut *tx)
                        .await?;
                    let row = sqlx::query(lq::INVITATION_BY_TOKEN)
                        .bind(&inv.token_hash)
                        .fetch_one(&mut *tx)
                        .await?;
                    let out = invitation(&row, rows::sorted(inv.roles.clone()))?;
                    if let Some(mail) = &inv.mail {
                        Self::enqueue_mail_in(&mut tx, mail, now).await?;
                    }
                    let after = json!({
                        "invitation": out.id,
                        "email": out.email,
                        "roles": out.roles,
                        "expires_at": out.expires_at,
                    });
                    Self::finish(
                        &mut tx,
                        targets,
                        actor.entry(
                            "invitation.create",
                            format!("user:{user_id}"),
                            Some(inv.org_id.clone()),
                            before,
                            after,
                        ),
                        now,
                    )
                    .await?;
                    tx.commit().await?;
                    Ok(out)
                }

                async fn invitation_by_token(
                    &self,
                    token_hash: &str,
                ) -> StoreResult<Option<Invitation>> {
                    let mut conn = self.pool.acquire().await?;
                    let row = sqlx::query(lq::INVITATION_BY_TOKEN)
                        .bind(token_hash)
                        .fetch_optional(&mut *conn)
                        .await?;
                    let Some(row) = row else { return Ok(None) };
                    let user_id: String = row.try_get(1)?;
                    let roles = Self::user_roles_in(&mut conn, &user_id).await?;
                    Ok(Some(invitation(&row, roles)?))
                }

                async fn invitations_of_org(&self, org_id: &str) -> StoreResult<Vec<Invitation>> {
                    let mut conn = self.pool.acquire().await?;
                    let found = sqlx::query(lq::INVITATIONS_OF_ORG)
                        .bind(org_id)
                        .fetch_all(&mut *conn)
                        .await?;
                    let mut out = Vec::with_capacity(found.len());
                    for row in &found {
                        let user_id: String = row.try_get(1)?;
                        let roles = Self::user_roles_in(&mut conn, &user_id).await?;
                        out.push(invitation(row, roles)?);
                    }
                    Ok(out)
                }

                async fn accept_invitation(
                    &self,
                    token_hash: &str,
                    password_hash: &str,
                    actor: &AuditActor,
                    now: Timestamp,
                ) -> StoreResult<String> {
                    let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                    let claimed = sqlx::query(lq::CLAIM_INVITATION)
                        .bind(token_hash)
                        .bind(now)
                        .fetch_optional(&mut *tx)
                        .await?;
                    let Some(claimed) = claimed else {
                        return Err(StoreError::NotFound("no open invitation".into()));
                    };
                    let user_id: String = claimed.try_get(0)?;
                    let org_id: String = claimed.try_get(1)?;
                    let org_status: Option<String> = sqlx::query_scalar(lq::LOCK_ORG)
                        .bind(&org_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if org_status.as_deref() != Some(OrgStatus::Active.as_str()) {
                        return Err(StoreError::Refused("org_inactive"));
                    }
                    let activated = sqlx::query(lq::ACTIVATE_INVITED_USER)
                        .bind(&user_id)
                        .bind(password_hash)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if activated.is_none() {
                        return Err(StoreError::NotFound("no open invitation".into()));
                    }
                    let targets = vec![ChangeTarget::User(user_id.clone())];
                    Self::finish(
                        &mut tx,
                        targets,
                        actor.entry(
                            "invitation.accept",
                            format!("user:{user_id}"),
                            Some(org_id),
                            json!({"status": "invited"}),
                            json!({"status": "active"}),
                        ),
                        now,
                    )
                    .await?;
                    tx.commit().await?;
                    Ok(user_id)
                }

                async fn set_user_roles(
                    &self,
                    user_id: &str,
                    roles: &[String],
                    actor: &AuditActor,
                    now: Timestamp,
                ) -> StoreResult<Vec<String>> {
                    let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                    let (_, org_id) = Self::lock_user(&mut tx, user_id).await?;
                    Self::check_roles(&mut tx, roles).await?;
                    let before = Self::user_roles_in(&mut tx, user_id).await?;
                    Self::write_roles(&mut tx, user_id, roles).await?;
                    let after = rows::sorted(roles.to_vec());
                    Self::finish(
                        &mut tx,
                        vec![ChangeTarget::User(user_id.to_string())],
                        actor.entry(
                            "user.roles",
                            format!("user:{user_id}"),
                            Some(org_id),
                            json!({"roles": before}),
                            json!({"roles": after}),
                        ),
                        now,
                    )
                    .await?;
                    tx.commit().await?;
                    Ok(before)
                }

                async fn remove_user(
                    &self,
                    user_id: &str,
                    actor: &AuditActor,
                    now: Timestamp,
                ) -> StoreResult<()> {
                    let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                    let (status, org_id) = Self::lock_user(&mut tx, user_id).await?;
                    sqlx::query(q::SET_USER_STATUS)
                        .bind(user_id)
                        .bind(UserStatus::Disabled.as_str())
                        .execute(&mut *tx)
                        .await?;
                    let ended = sqlx::query(q::DELETE_USER_SESSIONS)
                        .bind(user_id)
                        .fetch_all(&mut *tx)
                        .await?
                        .len();
                    let grant_rows = sqlx::query(lq::DELETE_USER_GRANTS)
                        .bind(user_id)
                        .fetch_all(&mut *tx)
                        .await?;
                    let mut grants = Vec::with_capacity(grant_rows.len());
                    for row in &grant_rows {
                        let account: String = row.try_get(0)?;
                        let level: String = row.try_get(1)?;
                        let expires: Option<i64> = row.try_get(2)?;
                        grants.push(
                            json!({"account": account, "level": level, "expires_at": expires}),
                        );
                    }
                    sqlx::query(lq::REVOKE_OPEN_INVITATIONS)
                        .bind(user_id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    Self::finish(
                        &mut tx,
                        vec![ChangeTarget::User(user_id.to_string())],
                        actor.entry(
                            "user.remove",
                            format!("user:{user_id}"),
                            Some(org_id),
                            json!({"status": status, "grants": grants}),
                            json!({"status": "disabled", "sessions_ended": ended, "grants": []}),
                        ),
                        now,
                    )
                    .await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn put_grant(
                    &self,
                    grant: &GrantChange,
                    actor: &AuditActor,
                    now: Timestamp,
                ) -> StoreResult<Option<Grant>> {
                    let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                    let (_, org_id) = Self::lock_user(&mut tx, &grant.user_id).await?;
                    let account = sqlx::query(lq::ACCOUNT_EXISTS)
                        .bind(&grant.account_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if account.is_none() {
                        return Err(StoreError::NotFound(format!(
                            "no account {:?}",
                            grant.account_id
                        )));
                    }
                    let before = sqlx::query(lq::GRANT_OF)
                        .bind(&grant.user_id)
                        .bind(&grant.account_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    let before = before
                        .map(|row| grant_row(&grant.user_id, &grant.account_id, &row))
                        .transpose()?;
                    sqlx::query(lq::PUT_GRANT)
                        .bind(&grant.user_id)
                        .bind(&grant.account_id)
                        .bind(grant.level.as_str())
                        .bind(grant.expires_at)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    let after = Grant {
                        user_id: grant.user_id.clone(),
                        account_id: grant.account_id.clone(),
                        level: grant.level,
                        expires_at: grant.expires_at,
                    };
                    let action = if before.is_some() {
                        "grant.change"
                    } else {
                        "grant.assign"
                    };
                    Self::finish(
                        &mut tx,
                        vec![ChangeTarget::User(grant.user_id.clone())],
                        actor.entry(
                            action,
                            format!("grant:{}/{}", grant.user_id, grant.account_id),
                            Some(org_id),
                            before.as_ref().map_or(Value::Null, grant_json),
                            grant_json(&after),
                        ),
                        now,
                    )
                    .await?;
                    tx.commit().await?;
                    Ok(before)
                }

                async fn revoke_grant(
                    &self,
                    user_id: &str,
                    account_id: &str,
                    actor: &AuditActor,
                    now: Timestamp,
                ) -> StoreResult<Grant> {
                    let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                    let (_, org_id) = Self::lock_user(&mut tx, user_id).await?;
                    let row = sqlx::query(lq::DELETE_GRANT)
                        .bind(user_id)
                        .bind(account_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    let Some(row) = row else {
                        return Err(StoreError::NotFound(format!(
                            "no grant of {user_id:?} on {account_id:?}"
                        )));
                    };
                    let grant = grant_row(user_id, account_id, &row)?;
                    Self::finish(
                        &mut tx,
                        vec![ChangeTarget::User(user_id.to_string())],
                        actor.entry(
                            "grant.revoke",
                            format!("grant:{user_id}/{account_id}"),
                            Some(org_id),
                            grant_json(&grant),
                            Value::Null,
                        ),
                        now,
                    )
                    .await?;
                    tx.commit().await?;
                    Ok(grant)
                }

                async fn sweep_expired_grants(&self, now: Timestamp) -> StoreResult<Vec<Grant>> {
                    let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                    let found = sqlx::query(lq::DELETE_EXPIRED_GRANTS)
                        .bind(now)
                        .fetch_all(&mut *tx)
                        .await?;
                    let mut grants = Vec::with_capacity(found.len());
                    for row in &found {
                        grants.push(Grant {
                            user_id: row.try_get(0)?,
                            account_id: row.try_get(1)?,
                            level: rows::account_level(row.try_get(2)?)?,
                            expires_at: row.try_get(3)?,
                        });
                    }
                    if grants.is_empty() {
                        tx.rollback().await?;
                        return Ok(grants);
                    }
                    let targets = grants
                        .iter()
                        .map(|g| ChangeTarget::User(g.user_id.clone()))
                        .collect();
                    Self::record_changes_in(&mut tx, targets, now).await?;
                    let actor = AuditActor {
                        reason: Some("expired".into()),
                        ..AuditActor::system()
                    };
                    for g in &grants {
                        let org_id: Option<String> = sqlx::query_scalar(lq::USER_ORG)
                            .bind(&g.user_id)
                            .fetch_optional(&mut *tx)
                            .await?;
                        let target = format!("grant:{}/{}", g.user_id, g.account_id);
                        let entry =
                            actor.entry("grant.expire", target, org_id, grant_json(g), Value::Null);
                        Self::append_audit_in(&mut tx, &entry, now).await?;
                    }
                    tx.commit().await?;
                    Ok(grants)
                }

                async fn record_review_decision(
                    &self,
                    user_id: &str,
                    decision: ReviewDecision,
                    note: Option<&str>,
                    actor: &AuditActor,
                    now: Timestamp,
                ) -> StoreResult<()> {
                    let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                    let (status, org_id) = Self::lock_user(&mut tx, user_id).await?;
                    sqlx::query(lq::UPSERT_REVIEW_DECISION)
                        .bind(user_id)
                        .bind(decision.as_str())
                        .bind(&actor.actor)
                        .bind(note)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    let mut targets = Vec::new();
                    let mut after =
                        json!({"decision": decision.as_str(), "note": note, "status": status});
                    if decision == ReviewDecision::Revoke {
                        sqlx::query(q::SET_USER_STATUS)
                            .bind(user_id)
                            .bind(UserStatus::Disabled.as_str())
                            .execute(&mut *tx)
                            .await?;
                        let ended = sqlx::query(q::DELETE_USER_SESSIONS)
                            .bind(user_id)
                            .fetch_all(&mut *tx)
                            .await?
                            .len();
                        after["status"] = json!("disabled");
                        after["sessions_ended"] = json!(ended);
                        targets.push(ChangeTarget::User(user_id.to_string()));
                    }
                    let action = match decision {
                        ReviewDecision::Keep => "review.keep",
                        ReviewDecision::Revoke => "review.revoke",
                    };
                    Self::finish(
                        &mut tx,
                        targets,
                        actor.entry(
                            action,
                            format!("user:{user_id}"),
                            Some(org_id),
                            json!({"status": status}),
                            after,
                        ),
                        now,
                    )
                    .await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn review_decisions(&self) -> StoreResult<Vec<ReviewDecisionRecord>> {
                    let found = sqlx::query(lq::REVIEW_DECISIONS)
                        .fetch_all(&self.pool)
                        .await?;
                    let mut out = Vec::with_capacity(found.len());
                    for row in &found {
                        let decision: String = row.try_get(1)?;
                        let Some(decision) = ReviewDecision::parse(&decision) else {
                            return Err(StoreError::Unavailable(format!(
                                "unknown review decision {decision:?}"
                            )));
                        };
                        out.push(ReviewDecisionRecord {
                            user_id: row.try_get(0)?,
                            decision,
                            reviewer: row.try_get(2)?,
                            note: row.try_get(3)?,
                            ts: row.try_get(4)?,
                        });
                    }
                    Ok(out)
                }
            }
        };
    };
}
