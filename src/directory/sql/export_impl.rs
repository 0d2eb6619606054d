//! `directory export` and the gauge counts for one sqlx database, stamped out by
//! `sql_export!`. Everything is sorted in Rust so the output is stable.

/// `sql_export!(Store type, DB)`: inherent `run_export` and `run_stats` used by `impl Store`.
macro_rules! sql_export {
    ($store:ident, $db:ty) => {
        const _: () = {
            use std::collections::HashMap;

            use sqlx::Row;

            use $crate::directory::data::{
                AccountEntry, DirectoryData, GrantEntry, OrgEntry, RoleEntry, UserEntry,
            };
            use $crate::directory::model::{DirectoryStats, OrgStatus, Timestamp, UserStatus};
            use $crate::directory::sql::{queries as q, rows};
            use $crate::directory::store::StoreResult;

            type Conn = <$db as sqlx::Database>::Connection;
            type DbRow = <$db as sqlx::Database>::Row;
            type Children = HashMap<String, Vec<String>>;

            fn role_entry(row: &DbRow, permissions: &mut Children) -> StoreResult<RoleEntry> {
                let name: String = row.try_get(0)?;
                Ok(RoleEntry {
                    permissions: permissions.remove(&name).unwrap_or_default(),
                    delegable: row.try_get::<i64, _>(1)? != 0,
                    name,
                })
            }

            fn org_entry(row: &DbRow) -> StoreResult<OrgEntry> {
                let max_users: Option<i64> = row.try_get(4)?;
                Ok(OrgEntry {
                    id: row.try_get(0)?,
                    name: row.try_get(1)?,
                    org_type: row.try_get(2)?,
                    status: Some(rows::org_status(row.try_get(3)?)?.as_str().to_string()),
                    max_users: max_users
                        .map(|n| rows::count_u32("max_users", n))
                        .transpose()?,
                })
            }

            fn user_entry(
                row: &DbRow,
                roles: &mut Children,
                secrets: bool,
            ) -> StoreResult<UserEntry> {
                let id: String = row.try_get(0)?;
                let password_hash: Option<String> = row.try_get(4)?;
                Ok(UserEntry {
                    email: row.try_get(1)?,
                    org: row.try_get(2)?,
                    roles: roles.remove(&id).unwrap_or_default(),
                    status: Some(rows::user_status(row.try_get(3)?)?.as_str().to_string()),
                    password_hash: password_hash.filter(|_| secrets),
                })
            }

            fn account_entry(row: &DbRow) -> StoreResult<AccountEntry> {
                Ok(AccountEntry {
                    id: row.try_get(0)?,
                    name: row.try_get(1)?,
                })
            }

            fn grant_entry(row: &DbRow) -> StoreResult<GrantEntry> {
                let expires_at: Option<Timestamp> = row.try_get(3)?;
                Ok(GrantEntry {
                    user: row.try_get(0)?,
                    account: row.try_get(1)?,
                    permission: rows::account_level(row.try_get(2)?)?.as_str().to_string(),
                    expires: expires_at.map(rows::format_expires).transpose()?,
                })
            }

            impl $store {
                async fn run_export(&self, with_secrets: bool) -> StoreResult<DirectoryData> {
                    // One transaction: a consistent snapshot on SQLite (WAL).
                    let mut tx = self.pool.begin().await?;
                    let data = DirectoryData {
                        roles: Self::export_roles(&mut tx).await?,
                        orgs: Self::export_orgs(&mut tx).await?,
                        users: Self::export_users(&mut tx, with_secrets).await?,
                        accounts: Self::export_accounts(&mut tx).await?,
                        grants: Self::export_grants(&mut tx).await?,
                    };
                    tx.rollback().await?;
                    Ok(data)
                }

                async fn children(conn: &mut Conn, sql: &'static str) -> StoreResult<Children> {
                    let rows = sqlx::query(sql).fetch_all(&mut *conn).await?;
                    let pairs = rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?)));
                    Ok(rows::grouped(pairs.collect::<StoreResult<_>>()?))
                }

                async fn export_roles(conn: &mut Conn) -> StoreResult<Vec<RoleEntry>> {
                    let mut permissions = Self::children(conn, q::EXPORT_ROLE_PERMISSIONS).await?;
                    let rows = sqlx::query(q::EXPORT_ROLES).fetch_all(&mut *conn).await?;
                    let roles = rows.iter().map(|r| role_entry(r, &mut permissions));
                    let mut roles = roles.collect::<StoreResult<Vec<_>>>()?;
                    roles.sort_unstable_by(|a, b| a.name.cmp(&b.name));
                    Ok(roles)
                }

                async fn export_orgs(conn: &mut Conn) -> StoreResult<Vec<OrgEntry>> {
                    let rows = sqlx::query(q::EXPORT_ORGS).fetch_all(&mut *conn).await?;
                    let mut orgs = rows
                        .iter()
                        .map(org_entry)
                        .collect::<StoreResult<Vec<_>>>()?;
                    orgs.sort_unstable_by(|a, b| a.id.cmp(&b.id));
                    Ok(orgs)
                }

                async fn export_users(
                    conn: &mut Conn,
                    secrets: bool,
                ) -> StoreResult<Vec<UserEntry>> {
                    let mut roles = Self::children(conn, q::EXPORT_USER_ROLES).await?;
                    let rows = sqlx::query(q::EXPORT_USERS).fetch_all(&mut *conn).await?;
                    let users = rows.iter().map(|r| user_entry(r, &mut roles, secrets));
                    let mut users = users.collect::<StoreResult<Vec<_>>>()?;
                    users.sort_unstable_by(|a, b| a.email.cmp(&b.email));
                    Ok(users)
                }

                async fn export_accounts(conn: &mut Conn) -> StoreResult<Vec<AccountEntry>> {
                    let rows = sqlx::query(q::EXPORT_ACCOUNTS)
                        .fetch_all(&mut *conn)
                        .await?;
                    let accounts = rows.iter().map(account_entry);
                    let mut accounts = accounts.collect::<StoreResult<Vec<_>>>()?;
                    accounts.sort_unstable_by(|a, b| a.id.cmp(&b.id));
                    Ok(accounts)
                }

                async fn export_grants(conn: &mut Conn) -> StoreResult<Vec<GrantEntry>> {
                    let rows = sqlx::query(q::EXPORT_GRANTS).fetch_all(&mut *conn).await?;
                    let mut grants = rows
                        .iter()
                        .map(grant_entry)
                        .collect::<StoreResult<Vec<_>>>()?;
                    grants
                        .sort_unstable_by(|a, b| (&a.user, &a.account).cmp(&(&b.user, &b.account)));
                    Ok(grants)
                }

                async fn run_stats(
                    &self,
                    now: Timestamp,
                    windows: &[i64],
                ) -> StoreResult<DirectoryStats> {
                    let users = self.status_counts(q::USERS_BY_STATUS).await?;
                    let orgs = self.status_counts(q::ORGS_BY_STATUS).await?;
                    let mut users_active = Vec::with_capacity(windows.len());
                    for window in windows {
                        let since = now.saturating_sub(*window);
                        users_active
                            .push((*window, self.count(q::USERS_ACTIVE_SINCE, since).await?));
                    }
                    Ok(DirectoryStats {
                        users_by_status: rows::by_status(
                            &UserStatus::ALL,
                            users,
                            rows::user_status,
                        )?,
                        orgs_by_status: rows::by_status(&OrgStatus::ALL, orgs, rows::org_status)?,
                        users_active,
                        sessions_active: self.count(q::SESSIONS_ACTIVE, now).await?,
                    })
                }

                async fn status_counts(
                    &self,
                    sql: &'static str,
                ) -> StoreResult<Vec<(String, i64)>> {
                    let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
                    let counts = rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?)));
                    counts.collect()
                }

                async fn count(&self, sql: &'static str, at: Timestamp) -> StoreResult<i64> {
                    let row = sqlx::query(sql).bind(at).fetch_one(&self.pool).await?;
                    Ok(row.try_get(0)?)
                }
            }
        };
    };
}
