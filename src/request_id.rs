//! Request ids: a random per-process prefix and a counter, as text and as a header value
//! built once, so the request, the upstream request, the answer and the log line share
//! one buffer. Unique, cheap, and not a secret (they are shown to clients).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::HeaderValue;

/// One request's id.
#[derive(Clone, PartialEq, Eq)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// A well-formed id a trusted proxy sent (see `normalize::is_valid_request_id`).
    pub fn adopt(id: &str) -> Option<Self> {
        HeaderValue::from_str(id).ok().map(RequestId)
    }

    pub fn as_str(&self) -> &str {
        // Made only of visible ASCII (ours are hex, adopted ones validated).
        self.0.to_str().unwrap_or_default()
    }

    /// For a header: shares the id's buffer.
    pub fn header_value(&self) -> HeaderValue {
        self.0.clone()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The ids of one process: `<12 hex prefix>-<12 hex counter>`.
pub struct RequestIds {
    prefix: u64,
    counter: AtomicU64,
}

impl Default for RequestIds {
    fn default() -> Self {
        RequestIds {
            prefix: rand::random(),
            counter: AtomicU64::new(0),
        }
    }
}

impl RequestIds {
    pub fn next(&self) -> RequestId {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut out = [0u8; 25];
        hex(&mut out[..12], self.prefix);
        out[12] = b'-';
        hex(&mut out[13..], n);
        let value = HeaderValue::from_maybe_shared(Bytes::copy_from_slice(&out))
            .unwrap_or_else(|_| HeaderValue::from_static("000000000000-000000000000"));
        RequestId(value)
    }
}

/// The low `out.len()` hex digits of `value`, most significant first.
fn hex(out: &mut [u8], value: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = out.len();
    for (i, slot) in out.iter_mut().enumerate() {
        let shift = (digits - 1 - i) * 4;
        *slot = HEX[((value >> shift) & 0xf) as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_unique_and_well_formed() {
        let ids = RequestIds::default();
        let a = ids.next();
        let b = ids.next();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 25);
        assert!(crate::normalize::is_valid_request_id(a.as_str()));
        assert!(a.as_str().ends_with("-000000000000"), "{a}");
        assert!(b.as_str().ends_with("-000000000001"), "{b}");
        assert_eq!(a.header_value(), a.as_str());
    }
}
