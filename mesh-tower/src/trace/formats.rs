//! The header formats a trace context travels in, and those of a trace mesh starts.
//!
//! A context that arrived goes on in the formats it arrived in ([`TraceContext::extract`]). A
//! trace mesh starts itself has no such format: it goes out in the formats the process's
//! OpenTelemetry propagators name (`OTEL_PROPAGATORS`, read once), as an OpenTelemetry SDK in the
//! application would write them, or in those set by [`set_new_trace_formats`]. The
//! specification's default is `tracecontext` (W3C), which is also what Istio's OpenTelemetry
//! provider speaks; a mesh whose sidecars run Envoy's Zipkin tracer (B3) sets
//! `OTEL_PROPAGATORS=tracecontext,b3multi` so both kinds of tracer join mesh's traces.
//!
//! [`TraceContext::extract`]: super::TraceContext::extract

use std::sync::atomic::{AtomicU8, Ordering};

/// The propagation formats a trace context travels in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Formats {
    /// W3C Trace Context: `traceparent` and `tracestate`.
    pub w3c: bool,
    /// Zipkin B3, written as the multi-header form (`x-b3-*`), as Envoy's Zipkin tracer writes it.
    pub b3: bool,
}

impl Formats {
    /// Both formats.
    pub const BOTH: Self = Self {
        w3c: true,
        b3: true,
    };
    /// W3C Trace Context only (the OpenTelemetry tracer's).
    pub const W3C: Self = Self {
        w3c: true,
        b3: false,
    };
    /// B3 only (the Zipkin tracer's).
    pub const B3: Self = Self {
        w3c: false,
        b3: true,
    };
    /// No trace headers (`OTEL_PROPAGATORS=none`): a trace mesh starts is not propagated.
    pub const NONE: Self = Self {
        w3c: false,
        b3: false,
    };

    /// The formats of a trace mesh starts: those [`set_new_trace_formats`] set, else those of
    /// `OTEL_PROPAGATORS` ([`Formats::from_otel_propagators`]), read on first use; W3C when it
    /// is unset. One atomic load after the first call.
    pub fn for_new_trace() -> Self {
        match Self::from_bits(NEW_TRACE.load(Ordering::Relaxed)) {
            Some(formats) => formats,
            None => {
                let value = std::env::var("OTEL_PROPAGATORS").ok();
                let (formats, unknown) = Self::from_otel_propagators(value.as_deref());
                if !unknown.is_empty() {
                    tracing::warn!(
                        ?unknown,
                        ?formats,
                        "OTEL_PROPAGATORS names propagators mesh does not write; ignored"
                    );
                }
                // Losing a race to a setter keeps the setter's value.
                let _ = NEW_TRACE.compare_exchange(
                    UNSET,
                    formats.bits(),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
                Self::from_bits(NEW_TRACE.load(Ordering::Relaxed)).unwrap_or(formats)
            }
        }
    }

    /// The formats an `OTEL_PROPAGATORS` value names (the OpenTelemetry SDK environment
    /// specification: a comma-separated list, default `tracecontext,baggage`), and the names
    /// mesh does not write, which the specification says to warn about and ignore:
    /// `tracecontext` is W3C; `b3multi` and `b3` are B3, which mesh writes in the multi-header
    /// form Envoy's Zipkin tracer writes (it reads both forms); `baggage` is the application's
    /// to carry and adds nothing here; `none` adds nothing either, so `none` (or `baggage`) alone
    /// is [`Formats::NONE`]. A list whose only propagators are ones mesh does not write falls
    /// back to W3C rather than to no propagation.
    ///
    /// ```
    /// use mesh_tower::trace::Formats;
    /// assert_eq!(Formats::from_otel_propagators(None), (Formats::W3C, vec![]));
    /// assert_eq!(
    ///     Formats::from_otel_propagators(Some("tracecontext, b3multi")),
    ///     (Formats::BOTH, vec![])
    /// );
    /// assert_eq!(
    ///     Formats::from_otel_propagators(Some("xray")),
    ///     (Formats::W3C, vec!["xray".to_string()])
    /// );
    /// ```
    pub fn from_otel_propagators(value: Option<&str>) -> (Self, Vec<String>) {
        let Some(value) = value.filter(|v| !v.trim().is_empty()) else {
            return (Self::W3C, Vec::new());
        };
        let mut formats = Self::NONE;
        let mut unknown = Vec::new();
        for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name.to_ascii_lowercase().as_str() {
                "tracecontext" => formats.w3c = true,
                "b3" | "b3multi" => formats.b3 = true,
                "baggage" | "none" => {}
                _ => unknown.push(name.to_string()),
            }
        }
        if formats == Self::NONE && !unknown.is_empty() {
            formats = Self::W3C;
        }
        (formats, unknown)
    }

    fn bits(self) -> u8 {
        SET | u8::from(self.w3c) | (u8::from(self.b3) << 1)
    }

    fn from_bits(bits: u8) -> Option<Self> {
        (bits & SET != 0).then_some(Self {
            w3c: bits & 1 != 0,
            b3: bits & 2 != 0,
        })
    }
}

/// Sets the formats of every trace mesh starts from now on, in place of `OTEL_PROPAGATORS`.
pub fn set_new_trace_formats(formats: Formats) {
    NEW_TRACE.store(formats.bits(), Ordering::Relaxed);
}

const UNSET: u8 = 0;
const SET: u8 = 0x80;

/// The formats of a new trace as [`Formats::bits`], or [`UNSET`] before the first use.
static NEW_TRACE: AtomicU8 = AtomicU8::new(UNSET);

#[cfg(test)]
mod tests {
    use super::*;

    /// The OpenTelemetry SDK environment specification's `OTEL_PROPAGATORS`: default
    /// `tracecontext,baggage`; `none` configures no propagator; unknown values are warned
    /// about and ignored.
    #[test]
    fn otel_propagators_name_the_formats() {
        let parse = |v: &str| Formats::from_otel_propagators(Some(v));
        assert_eq!(parse("tracecontext,baggage"), (Formats::W3C, vec![]));
        assert_eq!(parse("b3multi"), (Formats::B3, vec![]));
        assert_eq!(parse("B3"), (Formats::B3, vec![]));
        assert_eq!(parse(" b3multi , tracecontext "), (Formats::BOTH, vec![]));
        assert_eq!(parse("none"), (Formats::NONE, vec![]));
        assert_eq!(parse(""), (Formats::W3C, vec![]));
        // Only baggage: mesh writes no trace format for it, and nothing unknown was named.
        assert_eq!(parse("baggage"), (Formats::NONE, vec![]));
        assert_eq!(
            parse("jaeger,b3"),
            (Formats::B3, vec!["jaeger".to_string()])
        );
        assert_eq!(
            parse("jaeger,ottrace"),
            (Formats::W3C, vec!["jaeger".into(), "ottrace".into()])
        );
        assert_eq!(parse("none,xray"), (Formats::W3C, vec!["xray".into()]));
    }

    #[test]
    fn bits_round_trip() {
        for f in [Formats::BOTH, Formats::W3C, Formats::B3, Formats::NONE] {
            assert_eq!(Formats::from_bits(f.bits()), Some(f));
        }
        assert_eq!(Formats::from_bits(UNSET), None);
    }
}
