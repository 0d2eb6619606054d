//! `[access_log]` and `[metrics]`: where the access log goes and how many org ids the
//! metrics' `org` label keeps.

use crate::config::file::{AccessLogFile, MetricsFile};
use crate::config::{AccessLogConfig, AccessLogPath, MetricsConfig};

use super::validator::Validator;

pub(super) fn access_log(v: &mut Validator, f: AccessLogFile) -> AccessLogConfig {
    let path = match f.path.as_deref() {
        None | Some("-") => AccessLogPath::Stdout,
        Some("") => {
            v.problem("access_log.path", "use \"-\" for stdout or a file path");
            AccessLogPath::Stdout
        }
        Some(p) => AccessLogPath::File(v.path(p)),
    };
    AccessLogConfig { path }
}

pub(super) fn metrics(v: &mut Validator, f: MetricsFile) -> MetricsConfig {
    MetricsConfig {
        top_orgs: v.int("metrics.top_orgs", f.top_orgs, 100, 1, 10_000) as usize,
    }
}
