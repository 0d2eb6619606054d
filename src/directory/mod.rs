//! The directory (CONTRACT §6): orgs, roles, users, client accounts, grants and sessions,
//! behind a [`Store`] with SQLite and PostgreSQL implementations.

mod cache;
pub mod data;
pub mod model;
mod sql;
pub mod store;
#[cfg(test)]
mod tests;

pub use cache::{CacheCounters, CachedIdentity, Directory, IdentityHeaderValues, TOUCH_EVERY};
pub use data::{DirectoryData, ImportCounts};
pub use model::*;
pub use sql::connect;
pub use store::{Store, StoreError, StoreResult};
