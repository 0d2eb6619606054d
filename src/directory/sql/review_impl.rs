//! The access review for one sqlx database, stamped out by `sql_review!`: four queries
//! (users with their org, user roles, grants, admin roles) in one read transaction, joined
//! in Rust.

/// `sql_review!(Store type, DB)`: inherent `run_review` used by `impl Store`.
macro_rules! sql_review {
    ($store:ident, $db:ty) => {
        const _: () = {
            use std::collections::HashMap;

            use sqlx::Row;

            use $crate::directory::review::{
                ReviewFlags, ReviewGrant, ReviewParams, ReviewRow, ADMIN_PERMISSION,
            };
            use $crate::directory::sql::{queries as q, rows};
            use $crate::directory::store::StoreResult;

            type DbRow = <$db as sqlx::Database>::Row;

            fn review_row(row: &DbRow) -> StoreResult<ReviewRow> {
                Ok(ReviewRow {
                    user_id: row.try_get(0)?,
                    email: row.try_get(1)?,
                    org_id: row.try_get(2)?,
                    org_type: row.try_get(3)?,
                    org_status: rows::org_status(row.try_get(4)?)?,
                    status: rows::user_status(row.try_get(5)?)?,
                    roles: Vec::new(),
                    grants: Vec::new(),
                    last_login_at: row.try_get(6)?,
                    last_seen_at: row.try_get(7)?,
                    created_at: row.try_get(8)?,
                    flags: ReviewFlags::default(),
                })
            }

            fn review_grant(row: &DbRow) -> StoreResult<(String, ReviewGrant)> {
                let grant = ReviewGrant {
                    account: row.try_get(1)?,
                    level: rows::account_level(row.try_get(2)?)?,
                    expires_at: row.try_get(3)?,
                    expired: false,
                };
                Ok((row.try_get(0)?, grant))
            }

            impl $store {
                async fn run_review(&self, params: &ReviewParams) -> StoreResult<Vec<ReviewRow>> {
                    // One transaction: the four reads see one snapshot.
                    let mut tx = self.pool.begin().await?;
                    let mut roles = Self::children(&mut tx, q::EXPORT_USER_ROLES).await?;
                    let admin_rows = sqlx::query(q::ROLES_WITH_PERMISSION)
                        .bind(ADMIN_PERMISSION)
                        .fetch_all(&mut *tx)
                        .await?;
                    let admin_roles = admin_rows.iter().map(|r| r.try_get::<String, _>(0));
                    let admin_roles = rows::sorted(admin_roles.collect::<Result<_, _>>()?);
                    let grant_rows = sqlx::query(q::REVIEW_GRANTS).fetch_all(&mut *tx).await?;
                    let mut grants: HashMap<String, Vec<ReviewGrant>> = HashMap::new();
                    for row in &grant_rows {
                        let (user, grant) = review_grant(row)?;
                        grants.entry(user).or_default().push(grant);
                    }
                    let user_rows = sqlx::query(q::REVIEW_USERS).fetch_all(&mut *tx).await?;
                    tx.rollback().await?;
                    let mut out = Vec::with_capacity(user_rows.len());
                    for row in &user_rows {
                        let mut user = review_row(row)?;
                        user.roles = roles.remove(&user.user_id).unwrap_or_default();
                        let mut own = grants.remove(&user.user_id).unwrap_or_default();
                        own.sort_unstable_by(|a, b| a.account.cmp(&b.account));
                        user.grants = own;
                        user.finish(params, &admin_roles);
                        out.push(user);
                    }
                    out.sort_unstable_by(|a, b| (&a.org_id, &a.email).cmp(&(&b.org_id, &b.email)));
                    Ok(out)
                }
            }
        };
    };
}
