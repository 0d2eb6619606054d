//! `directory import` for one sqlx database, stamped out by `sql_import!`: settle the
//! plan's checks against the database, then upsert, all in one transaction.

/// `sql_import!(Store type, DB)`: inherent `run_import` used by `impl Store`.
macro_rules! sql_import {
    ($store:ident, $db:ty) => {
        const _: () = {
            use std::collections::HashMap;

            use sqlx::Row;

            use $crate::directory::changes::ChangeTarget;
            use $crate::directory::data::{DirectoryData, ImportCounts};
            use $crate::directory::model::Timestamp;
            use $crate::directory::sql::plan::{
                self, Check, ImportPlan, PlannedGrant, PlannedOrg, PlannedRole, PlannedUser, Table,
            };
            use $crate::directory::sql::{queries as q, rows};
            use $crate::directory::store::{StoreError, StoreResult};

            type Conn = <$db as sqlx::Database>::Connection;

            fn exists_sql(table: Table) -> &'static str {
                match table {
                    Table::Org => q::ORG_EXISTS,
                    Table::Role => q::ROLE_EXISTS,
                    Table::Account => q::ACCOUNT_EXISTS,
                    Table::User => q::USER_EXISTS,
                }
            }

            impl $store {
                async fn run_import(
                    &self,
                    data: &DirectoryData,
                    now: Timestamp,
                    dry_run: bool,
                ) -> StoreResult<ImportCounts> {
                    let (plan, checks) = plan::plan(data);
                    let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                    let problems = Self::settle(&mut tx, checks).await?;
                    if !problems.is_empty() {
                        return Err(StoreError::Invalid(problems));
                    }
                    let mut changed = Self::write_plan(&mut tx, &plan, now).await?;
                    // An import that suspends a user or an org ends their sessions, as a
                    // suspension through the admin API does.
                    let ended = sqlx::query(q::DELETE_UNUSABLE_SESSIONS)
                        .fetch_all(&mut *tx)
                        .await?;
                    for row in &ended {
                        changed.push(ChangeTarget::User(row.try_get(0)?));
                    }
                    Self::record_changes_in(&mut tx, changed, now).await?;
                    if dry_run {
                        tx.rollback().await?;
                    } else {
                        tx.commit().await?;
                    }
                    Ok(plan.counts())
                }

                /// The problems that remain once references are looked up in the database
                /// (each distinct key once: many users usually share an org).
                async fn settle(conn: &mut Conn, checks: Vec<Check>) -> StoreResult<Vec<String>> {
                    let mut found: HashMap<(Table, String), bool> = HashMap::new();
                    let mut problems = Vec::new();
                    for check in checks {
                        match check {
                            Check::Problem(problem) => problems.push(problem),
                            Check::Exists {
                                table,
                                key,
                                problem,
                            } => {
                                let exists = match found.get(&(table, key.clone())) {
                                    Some(exists) => *exists,
                                    None => Self::exists(conn, table, &key).await?,
                                };
                                if !exists {
                                    problems.push(problem);
                                }
                                found.insert((table, key), exists);
                            }
                        }
                    }
                    Ok(problems)
                }

                async fn exists(conn: &mut Conn, table: Table, key: &str) -> StoreResult<bool> {
                    let query = sqlx::query(exists_sql(table)).bind(key);
                    Ok(query.fetch_optional(&mut *conn).await?.is_some())
                }

                /// Parents before children, so every foreign key already resolves. Returns
                /// what running gateways must drop: every org and user written (a grant
                /// counts for its user), or everything when roles were redefined (their
                /// holders are not known without a lookup, and imports are rare).
                async fn write_plan(
                    conn: &mut Conn,
                    plan: &ImportPlan<'_>,
                    now: Timestamp,
                ) -> StoreResult<Vec<ChangeTarget>> {
                    let mut changed = Vec::new();
                    if !plan.roles.is_empty() {
                        changed.push(ChangeTarget::All);
                    }
                    for role in &plan.roles {
                        Self::write_role(conn, role).await?;
                    }
                    for org in &plan.orgs {
                        Self::write_org(conn, org, now).await?;
                        changed.push(ChangeTarget::Org(org.entry.id.clone()));
                    }
                    for account in &plan.accounts {
                        let query = sqlx::query(q::UPSERT_ACCOUNT).bind(&account.id);
                        query.bind(&account.name).execute(&mut *conn).await?;
                    }
                    for user in &plan.users {
                        let id = Self::write_user(conn, user, now).await?;
                        changed.push(ChangeTarget::User(id));
                    }
                    for grant in &plan.grants {
                        if let Some(id) = Self::write_grant(conn, grant, now).await? {
                            changed.push(ChangeTarget::User(id));
                        }
                    }
                    Ok(changed)
                }

                async fn write_role(conn: &mut Conn, role: &PlannedRole<'_>) -> StoreResult<()> {
                    let delegable = i64::from(role.delegable);
                    let query = sqlx::query(q::UPSERT_ROLE).bind(role.name).bind(delegable);
                    query.execute(&mut *conn).await?;
                    let query = sqlx::query(q::CLEAR_ROLE_PERMISSIONS).bind(role.name);
                    query.execute(&mut *conn).await?;
                    for permission in &role.permissions {
                        let query = sqlx::query(q::INSERT_ROLE_PERMISSION).bind(role.name);
                        query.bind(*permission).execute(&mut *conn).await?;
                    }
                    Ok(())
                }

                async fn write_org(
                    conn: &mut Conn,
                    org: &PlannedOrg<'_>,
                    now: Timestamp,
                ) -> StoreResult<()> {
                    let entry = org.entry;
                    sqlx::query(q::UPSERT_ORG)
                        .bind(&entry.id)
                        .bind(&entry.name)
                        .bind(&entry.org_type)
                        .bind(org.status.as_str())
                        .bind(entry.max_users.map(i64::from))
                        .bind(now)
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                }

                /// Upsert by email: an existing user keeps its id, and its password hash
                /// when the file has none. Returns the user's id.
                async fn write_user(
                    conn: &mut Conn,
                    user: &PlannedUser<'_>,
                    now: Timestamp,
                ) -> StoreResult<String> {
                    let row = sqlx::query(q::UPSERT_USER)
                        .bind(rows::new_user_id())
                        .bind(&user.email)
                        .bind(&user.entry.org)
                        .bind(user.status.as_str())
                        .bind(user.entry.password_hash.as_deref())
                        .bind(now)
                        .fetch_one(&mut *conn)
                        .await?;
                    let id: String = row.try_get(0)?;
                    let query = sqlx::query(q::CLEAR_USER_ROLES).bind(&id);
                    query.execute(&mut *conn).await?;
                    for role in &user.roles {
                        let query = sqlx::query(q::INSERT_USER_ROLE).bind(&id).bind(*role);
                        query.execute(&mut *conn).await?;
                    }
                    Ok(id)
                }

                /// Returns the grantee's id.
                async fn write_grant(
                    conn: &mut Conn,
                    grant: &PlannedGrant<'_>,
                    now: Timestamp,
                ) -> StoreResult<Option<String>> {
                    let row = sqlx::query(q::UPSERT_GRANT)
                        .bind(&grant.user)
                        .bind(grant.account)
                        .bind(grant.level.as_str())
                        .bind(grant.expires_at)
                        .bind(now)
                        .fetch_optional(&mut *conn)
                        .await?;
                    Ok(row.map(|r| r.try_get(0)).transpose()?)
                }
            }
        };
    };
}
