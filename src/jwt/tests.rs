//! Unit tests of the jwt module. Keys: `testdata/` (see `testdata/generate.sh`).

mod assertion;
mod bearer;
mod config;
mod remote;
mod support;
