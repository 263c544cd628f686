//! W3C trace context (`traceparent`), carried in NATS request headers and in
//! every JetStream event header so that one checkout is one trace.

use std::fmt;

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The header name, as W3C and OpenTelemetry spell it.
pub const TRACEPARENT: &str = "traceparent";

/// A parsed `traceparent`: version 00, a trace id, the caller's span id, flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParent {
    trace_id: u128,
    span_id: u64,
    sampled: bool,
}

impl TraceParent {
    /// Starts a new trace.
    pub fn new_root() -> Self {
        TraceParent { trace_id: nonzero_u128(), span_id: nonzero_u64(), sampled: true }
    }

    /// The context for a hop below this one: same trace; the parent is the
    /// current span when OpenTelemetry records it (so exported spans nest),
    /// else a new span id.
    pub fn child(&self) -> Self {
        let current = tracing::Span::current().context().span().span_context().clone();
        let span_id = match (current.is_valid(), u128::from_be_bytes(current.trace_id().to_bytes()) == self.trace_id) {
            (true, true) => u64::from_be_bytes(current.span_id().to_bytes()),
            _ => nonzero_u64(),
        };
        TraceParent { span_id, ..*self }
    }

    /// Makes `span` a child of this context in exported traces (a no-op
    /// unless OpenTelemetry export is on).
    pub fn adopt(&self, span: &tracing::Span) {
        let context = SpanContext::new(
            TraceId::from_bytes(self.trace_id.to_be_bytes()),
            SpanId::from_bytes(self.span_id.to_be_bytes()),
            if self.sampled { TraceFlags::SAMPLED } else { TraceFlags::default() },
            true,
            TraceState::default(),
        );
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(context));
    }

    pub fn trace_id(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    /// Parses a header; `None` for anything malformed, so that a bad header
    /// from outside starts a new trace instead of failing a request.
    pub fn parse(header: &str) -> Option<Self> {
        let mut parts = header.trim().split('-');
        let (version, trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version != "00" || trace.len() != 32 || span.len() != 16 || flags.len() != 2 {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok().filter(|t| *t != 0)?;
        let span_id = u64::from_str_radix(span, 16).ok().filter(|s| *s != 0)?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        Some(TraceParent { trace_id, span_id, sampled: flags & 1 == 1 })
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "00-{:032x}-{:016x}-{:02x}", self.trace_id, self.span_id, u8::from(self.sampled))
    }
}

fn nonzero_u128() -> u128 {
    loop {
        let v: u128 = rand::random();
        if v != 0 {
            return v;
        }
    }
}

fn nonzero_u64() -> u64 {
    loop {
        let v: u64 = rand::random();
        if v != 0 {
            return v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_children_share_the_trace() {
        let root = TraceParent::new_root();
        let parsed = TraceParent::parse(&root.to_string()).expect("own output parses");
        assert_eq!(parsed, root);
        let child = root.child();
        assert_eq!(child.trace_id(), root.trace_id());
        assert_ne!(child.to_string(), root.to_string());
    }

    #[test]
    fn malformed_headers_are_ignored() {
        for bad in ["", "00-abc-def-01", "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                    "00-00000000000000000000000000000000-b7ad6b7169203331-01"] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
        assert!(TraceParent::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").is_some());
    }
}
