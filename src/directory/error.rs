//! What a directory call can fail with: every method of the store traits answers a
//! [`StoreResult`]. The modules the traits' signatures use (audit, lifecycle, review…)
//! depend on this one, not on the traits.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or answered with an error.
    #[error("directory unavailable: {0}")]
    Unavailable(String),
    /// The input names records that do not exist or breaks a rule; one line per problem,
    /// each naming the record (`user "bob@acme.example": unknown org "acme2"`).
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
    /// The record a change names does not exist (`no user "u-1"`); nothing was written.
    #[error("{0}")]
    NotFound(String),
    /// The change collides with the directory as it is (`user "x" already exists in org
    /// "y"`); nothing was written.
    #[error("{0}")]
    Conflict(String),
    /// The change is outside what the directory allows (a seat cap, an org that is not
    /// active): the reason word (`seat_cap`, `org_inactive`); nothing was written.
    #[error("refused: {0}")]
    Refused(&'static str),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Unavailable(format!("migration failed: {e}"))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;
