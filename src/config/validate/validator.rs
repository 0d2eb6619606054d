//! The shared core of validation: the [`Validator`] that collects every problem with the
//! file, the key and the reason, and the checks more than one section uses.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::config::file::RateFile;
use crate::config::{Config, ConfigErrors, Loaded, Problem, RateSpec, RedisFallback};

/// Collects problems while building; every helper returns a usable default on error so
/// validation can go on and report the rest.
pub(super) struct Validator {
    file: PathBuf,
    dir: PathBuf,
    problems: Vec<Problem>,
    warnings: Vec<Problem>,
}

impl Validator {
    /// A validator for the config file at `path`; relative paths in it follow its directory.
    pub(super) fn new(path: &Path) -> Self {
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        Validator {
            file: path.to_path_buf(),
            dir,
            problems: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// The config file being validated.
    pub(super) fn file(&self) -> &Path {
        &self.file
    }

    /// Every problem found so far.
    pub(super) fn into_errors(self) -> ConfigErrors {
        ConfigErrors(self.problems)
    }

    /// `config` with the warnings, or every problem when there was any.
    pub(super) fn finish(self, config: Config) -> Result<Loaded, ConfigErrors> {
        if self.problems.is_empty() {
            Ok(Loaded {
                config,
                warnings: self.warnings,
            })
        } else {
            Err(self.into_errors())
        }
    }

    /// How many problems are recorded so far.
    pub(super) fn problem_count(&self) -> usize {
        self.problems.len()
    }

    pub(super) fn problem(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        self.problems.push(Problem {
            file: self.file.clone(),
            key: key.into(),
            reason: reason.into(),
        });
    }

    pub(super) fn warn(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        self.warnings.push(Problem {
            file: self.file.clone(),
            key: key.into(),
            reason: reason.into(),
        });
    }

    /// Deserialize one section (or array element) on its own, so a mistake in one does
    /// not hide the mistakes in the others.
    pub(super) fn section<T: DeserializeOwned>(
        &mut self,
        key: &str,
        value: &toml::Value,
    ) -> Option<T> {
        match value.clone().try_into::<T>() {
            Ok(v) => Some(v),
            Err(e) => {
                self.problem(key, e.message().trim().to_string());
                None
            }
        }
    }

    /// An optional section: its defaults when absent or broken (the problem is recorded).
    pub(super) fn optional<T: DeserializeOwned + Default>(
        &mut self,
        table: &toml::Table,
        key: &str,
    ) -> T {
        table
            .get(key)
            .and_then(|value| self.section::<T>(key, value))
            .unwrap_or_default()
    }

    /// The elements of an array-of-tables section (`[[routes]]`, `[[issuers]]`), each
    /// deserialized on its own, with its `section[i]` key.
    pub(super) fn array_of<T: DeserializeOwned>(
        &mut self,
        name: &str,
        value: &toml::Value,
    ) -> Vec<(String, T)> {
        let Some(items) = value.as_array() else {
            self.problem(name, format!("must be an array of [[{name}]] tables"));
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let key = format!("{name}[{i}]");
            if let Some(f) = self.section::<T>(&key, item) {
                out.push((key, f));
            }
        }
        out
    }

    /// The choice whose `name` is `raw`; otherwise a problem listing every name, in the
    /// order of `choices`, and `None`.
    pub(super) fn one_of<T: Copy>(
        &mut self,
        key: impl Into<String>,
        raw: &str,
        choices: &[T],
        name: impl Fn(T) -> &'static str,
    ) -> Option<T> {
        if let Some(&choice) = choices.iter().find(|&&c| name(c) == raw) {
            return Some(choice);
        }
        let names: Vec<&str> = choices.iter().map(|&c| name(c)).collect();
        self.problem(key, format!("\"{raw}\" is not one of {}", names.join(", ")));
        None
    }

    pub(super) fn duration(&mut self, key: &str, raw: Option<&str>, default: Duration) -> Duration {
        let Some(raw) = raw else { return default };
        match humantime::parse_duration(raw.trim()) {
            Ok(d) if d.is_zero() => {
                self.problem(key, format!("\"{raw}\" must be longer than zero"));
                default
            }
            Ok(d) => d,
            Err(e) => {
                self.problem(key, format!("\"{raw}\" is not a duration ({e}); use e.g. \"30s\", \"15m\", \"12h\", \"7d\""));
                default
            }
        }
    }

    pub(super) fn int(
        &mut self,
        key: &str,
        raw: Option<i64>,
        default: i64,
        min: i64,
        max: i64,
    ) -> i64 {
        match raw {
            None => default,
            Some(v) if (min..=max).contains(&v) => v,
            Some(v) => {
                self.problem(key, format!("{v} is out of range {min}..={max}"));
                default
            }
        }
    }

    /// `raw` as written when absolute, else relative to the config file's directory.
    pub(super) fn path(&self, raw: &str) -> PathBuf {
        let p = Path::new(raw);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }

    pub(super) fn socket_addr(&mut self, key: &str, raw: &str) -> Option<SocketAddr> {
        if let Ok(addr) = raw.parse::<SocketAddr>() {
            return Some(addr);
        }
        match raw.to_socket_addrs().map(|mut it| it.next()) {
            Ok(Some(addr)) => Some(addr),
            Ok(None) => {
                self.problem(key, format!("\"{raw}\" resolves to no address"));
                None
            }
            Err(e) => {
                self.problem(key, format!("\"{raw}\" is not host:port ({e})"));
                None
            }
        }
    }

    /// A token-bucket rate (`server.rate_limit_per_ip`, `login.rate_limit_per_ip`, a
    /// route's `rate_limit`); `fallback` when it does not set `on_redis_error`.
    pub(super) fn rate(&mut self, key: &str, raw: RateFile, fallback: RedisFallback) -> RateSpec {
        if !(raw.per_second.is_finite() && raw.per_second > 0.0 && raw.per_second <= 1e9) {
            self.problem(format!("{key}.per_second"), "must be a number above 0");
        }
        let burst = self.int(
            &format!("{key}.burst"),
            Some(raw.burst),
            1,
            1,
            u32::MAX as i64,
        );
        let on_redis_error = match raw.on_redis_error.as_deref() {
            None => fallback,
            Some(other) => self
                .one_of(
                    format!("{key}.on_redis_error"),
                    other,
                    &RedisFallback::ALL,
                    RedisFallback::as_str,
                )
                .unwrap_or(fallback),
        };
        RateSpec {
            per_second: raw.per_second,
            burst: u32::try_from(burst).unwrap_or(1),
            on_redis_error,
        }
    }
}

/// Upstream and route names: 1 to 64 letters, digits, '-', '_' and '.'.
pub(super) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}
