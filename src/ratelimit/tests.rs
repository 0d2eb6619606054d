//! Unit tests of the ratelimit module. The `redis` tests need the Redis at
//! 127.0.0.1:6379 and fail (not skip) when it is down.

#![allow(clippy::unwrap_used)]

mod limits;
mod local;
mod shared;
mod support;
