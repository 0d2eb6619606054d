use std::path::Path;

use crate::config::{Config, RateSpec, RedisFallback};

pub fn spec(per_second: f64, burst: u32) -> RateSpec {
    RateSpec {
        per_second,
        burst,
        on_redis_error: RedisFallback::Local,
    }
}

pub fn config(text: &str) -> Config {
    Config::from_toml(Path::new("/etc/pg/test.toml"), text)
        .unwrap()
        .config
}
