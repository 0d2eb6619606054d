//! The live side of the limit stage: this process's buckets, or Redis when `[redis]`
//! shares them, with the fallback counted when Redis cannot answer.

use prometheus::IntCounterVec;

use crate::admission::{Limit, Limits};
use crate::ratelimit::{RateLimits, Verdict};

pub struct LiveLimits<'a> {
    pub limits: &'a RateLimits,
    /// `partnergate_ratelimit_fallbacks_total{route, action}`.
    pub fallbacks: &'a IntCounterVec,
}

impl Limits for LiveLimits<'_> {
    async fn check(&self, limit: Limit<'_>) -> Verdict {
        // The local path answers without a future; only Redis is awaited.
        let (verdict, fallback) = match self.limits.check_fast(limit.limiter, limit.key) {
            Some(answer) => answer,
            None => self.limits.check(limit.limiter, limit.key).await,
        };
        if let Some(action) = fallback {
            self.fallbacks
                .with_label_values(&[limit.route, action.as_str()])
                .inc();
        }
        verdict
    }
}
