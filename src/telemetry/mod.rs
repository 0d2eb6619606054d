//! OpenTelemetry traces of requests (`[tracing]`, off by default): a server span per
//! request with the admission stages as child spans and the decision as attributes,
//! the W3C trace context (`traceparent`) taken from the caller and passed to the
//! upstream, sampled by ratio (a caller's sampling decision is followed), and exported in
//! batches over OTLP/HTTP with the JSON encoding from a background task.
//!
//! No span attribute ever holds a token, a cookie, a query string or a header value: the
//! path as the access log writes it (tokens of invitation and reset links redacted), the
//! route, the method, the status, the decision and reason, the org and the user id.

mod export;

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use http::HeaderValue;
use prometheus::IntCounter;
use tokio::sync::mpsc;

use crate::config::TracingConfig;

pub use export::{encode, Exporter};

/// Spans waiting for the exporter; more are dropped (and counted).
const QUEUE: usize = 8192;

/// The trace context of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceIds {
    pub trace_id: [u8; 16],
    /// This request's server span.
    pub span_id: [u8; 8],
    /// The caller's span, from its `traceparent`.
    pub parent: Option<[u8; 8]>,
    pub sampled: bool,
}

impl TraceIds {
    /// The `traceparent` for the upstream: this trace, this request's span as parent.
    pub fn traceparent(&self) -> HeaderValue {
        let flags = if self.sampled { "01" } else { "00" };
        let text = format!("00-{}-{}-{flags}", hex(&self.trace_id), hex(&self.span_id));
        HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static(""))
    }
}

/// A W3C `traceparent` (version 00): trace id, parent span id, sampled flag. `None` for
/// anything malformed, an all-zero id, or version `ff`.
pub fn parse_traceparent(value: &[u8]) -> Option<([u8; 16], [u8; 8], bool)> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let mut parts = text.split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version.len() != 2 || version == "ff" || (version == "00" && parts.next().is_some()) {
        return None;
    }
    let trace: [u8; 16] = unhex(trace)?.try_into().ok()?;
    let parent: [u8; 8] = unhex(parent)?.try_into().ok()?;
    let flags = *unhex(flags)?.first()?;
    if trace == [0; 16] || parent == [0; 8] {
        return None;
    }
    Some((trace, parent, flags & 1 == 1))
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

pub(crate) use crate::directory::audit::hex;

/// OpenTelemetry span kinds, as numbered in OTLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Internal = 1,
    Server = 2,
    Client = 3,
}

/// A finished span.
#[derive(Debug, Clone)]
pub struct Span {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent: Option<[u8; 8]>,
    pub name: String,
    pub kind: Kind,
    pub start_ns: u64,
    pub end_ns: u64,
    pub attributes: Vec<(&'static str, String)>,
    pub error: bool,
}

/// The request path's handle: decides sampling, hands finished spans to the exporter.
pub struct Tracer {
    sample_ratio: f64,
    queue: mpsc::Sender<Span>,
    dropped: IntCounter,
}

impl Tracer {
    /// The tracer and the exporter task to spawn on the background runtime.
    pub fn new(config: &TracingConfig, dropped: IntCounter) -> Result<(Tracer, Exporter), String> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let exporter = Exporter::new(config, rx)?;
        Ok((
            Tracer {
                sample_ratio: config.sample_ratio,
                queue: tx,
                dropped,
            },
            exporter,
        ))
    }

    /// The trace context of a new request: the caller's trace (and sampling decision)
    /// when its `traceparent` is valid, else a new trace sampled by ratio.
    pub fn begin(&self, traceparent: Option<&HeaderValue>) -> TraceIds {
        let span_id = nonzero_id::<8>();
        match traceparent.and_then(|v| parse_traceparent(v.as_bytes())) {
            Some((trace_id, parent, sampled)) => TraceIds {
                trace_id,
                span_id,
                parent: Some(parent),
                sampled,
            },
            None => TraceIds {
                trace_id: nonzero_id::<16>(),
                span_id,
                parent: None,
                sampled: self.sample_ratio >= 1.0
                    || (self.sample_ratio > 0.0 && rand::random::<f64>() < self.sample_ratio),
            },
        }
    }

    /// Queue a finished span; dropped (and counted) when the exporter is behind.
    pub fn record(&self, span: Span) {
        if self.queue.try_send(span).is_err() {
            self.dropped.inc();
        }
    }
}

fn nonzero_id<const N: usize>() -> [u8; N] {
    loop {
        let id: [u8; N] = std::array::from_fn(|_| rand::random::<u8>());
        if id != [0; N] {
            return id;
        }
    }
}

/// A new span id (for child spans).
pub fn span_id() -> [u8; 8] {
    nonzero_id::<8>()
}

/// Wall-clock nanoseconds of an `Instant`, given a pair taken together.
pub fn unix_nanos(at: Instant, anchor: (Instant, SystemTime)) -> u64 {
    let (i0, s0) = anchor;
    let base = s0.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos() as i128;
    let delta = if at >= i0 {
        at.duration_since(i0).as_nanos() as i128
    } else {
        -(i0.duration_since(at).as_nanos() as i128)
    };
    u64::try_from(base + delta).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trip_and_refusals() {
        let tp = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let (trace, parent, sampled) = parse_traceparent(tp).expect("valid");
        assert_eq!(hex(&trace), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex(&parent), "00f067aa0ba902b7");
        assert!(sampled);
        let ids = TraceIds {
            trace_id: trace,
            span_id: [1, 2, 3, 4, 5, 6, 7, 8],
            parent: Some(parent),
            sampled,
        };
        assert_eq!(
            ids.traceparent(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0102030405060708-01"
        );
        for bad in [
            &b"00-00000000000000000000000000000000-00f067aa0ba902b7-01"[..],
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            b"00-4bf92f3577b34da6a3ce929d0e0e47-00f067aa0ba902b7-01",
            b"garbage",
        ] {
            assert_eq!(
                parse_traceparent(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // A later version may add fields.
        assert!(
            parse_traceparent(b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-x")
                .is_some()
        );
    }

    #[test]
    fn sampling_follows_the_caller_and_the_ratio() {
        let config = |ratio| TracingConfig {
            otlp_endpoint: "http://127.0.0.1:4318".into(),
            sample_ratio: ratio,
            service_name: "t".into(),
        };
        let dropped = IntCounter::new("d", "d").expect("counter");
        let (never, _) = Tracer::new(&config(0.0), dropped.clone()).expect("tracer");
        assert!(!never.begin(None).sampled);
        let caller =
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        let followed = never.begin(Some(&caller));
        assert!(followed.sampled, "the caller's decision");
        assert_eq!(hex(&followed.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        let (always, _) = Tracer::new(&config(1.0), dropped).expect("tracer");
        let unsampled =
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
        assert!(!always.begin(Some(&unsampled)).sampled);
        assert!(always.begin(None).sampled);
    }
}
