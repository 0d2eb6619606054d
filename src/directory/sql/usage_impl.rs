//! Usage data for one sqlx database, stamped out by `sql_usage!`: the flush's upsert
//! (adding counts, one transaction), the summed read behind the usage report, and pruning.

/// `sql_usage!(Store type, DB)`: inherent `run_*_usage` methods used by `impl Store`.
/// Needs the store's `BEGIN_WRITE` (see `sql_store!`).
macro_rules! sql_usage {
    ($store:ident, $db:ty) => {
        const _: () = {
            use std::sync::OnceLock;

            use sqlx::Row;

            use $crate::directory::sql::queries as q;
            use $crate::directory::store::StoreResult;
            use $crate::directory::usage::{UsageFilter, UsageRow, UsageTotal};

            type DbRow = <$db as sqlx::Database>::Row;

            fn usage_total(row: &DbRow) -> StoreResult<UsageTotal> {
                Ok(UsageTotal {
                    org_id: row.try_get(0)?,
                    user_id: row.try_get(1)?,
                    email: row.try_get(2)?,
                    route: row.try_get(3)?,
                    requests: row.try_get(4)?,
                })
            }

            fn same_key(a: &UsageRow, b: &UsageRow) -> bool {
                (a.day, &a.org_id, &a.user_id, &a.route) == (b.day, &b.org_id, &b.user_id, &b.route)
            }

            /// The statement for a full chunk, built once.
            fn full_chunk() -> &'static str {
                static SQL: OnceLock<String> = OnceLock::new();
                SQL.get_or_init(|| q::usage_upsert(q::USAGE_ROWS_PER_STATEMENT))
            }

            impl $store {
                async fn run_add_usage(&self, rows: &[UsageRow]) -> StoreResult<()> {
                    // Key order: every instance takes the row locks in the same order.
                    // Rows given twice are summed (one statement may not update a row twice).
                    let mut sorted: Vec<&UsageRow> = rows.iter().collect();
                    sorted.sort_unstable();
                    let mut rows: Vec<(&UsageRow, i64)> = Vec::with_capacity(sorted.len());
                    for row in sorted {
                        match rows.last_mut() {
                            Some((last, n)) if same_key(last, row) => *n += row.requests,
                            _ => rows.push((row, row.requests)),
                        }
                    }
                    rows.retain(|(_, n)| *n != 0);
                    if rows.is_empty() {
                        return Ok(());
                    }
                    let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                    for chunk in rows.chunks(q::USAGE_ROWS_PER_STATEMENT) {
                        let partial;
                        let sql = if chunk.len() == q::USAGE_ROWS_PER_STATEMENT {
                            full_chunk()
                        } else {
                            partial = q::usage_upsert(chunk.len());
                            partial.as_str()
                        };
                        let mut query = sqlx::query(sql);
                        for (row, requests) in chunk {
                            query = query
                                .bind(row.day)
                                .bind(&row.org_id)
                                .bind(&row.user_id)
                                .bind(&row.route)
                                .bind(*requests);
                        }
                        query.execute(&mut *tx).await?;
                    }
                    Ok(tx.commit().await?)
                }

                async fn run_usage(&self, filter: &UsageFilter) -> StoreResult<Vec<UsageTotal>> {
                    let rows = sqlx::query(q::USAGE_TOTALS)
                        .bind(filter.since_day)
                        .bind(filter.org.as_deref())
                        .bind(filter.user.as_deref())
                        .fetch_all(&self.pool)
                        .await?;
                    let mut out = rows
                        .iter()
                        .map(usage_total)
                        .collect::<StoreResult<Vec<_>>>()?;
                    out.sort_unstable_by(|a, b| {
                        (&a.org_id, &a.user_id, &a.route).cmp(&(&b.org_id, &b.user_id, &b.route))
                    });
                    Ok(out)
                }

                async fn run_prune_usage(&self, before_day: i64) -> StoreResult<u64> {
                    let query = sqlx::query(q::USAGE_PRUNE).bind(before_day);
                    Ok(query.execute(&self.pool).await?.rows_affected())
                }
            }
        };
    };
}
