//! Envoy's response flags: a short code for why a request ended the way it did, as Istio puts
//! in the `response_flags` label and access logs.

use std::fmt;

use serde::Serialize;

/// Why mesh answered a request itself, or how the upstream exchange ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum ResponseFlag {
    /// No route matched (`NR`).
    NoRoute,
    /// No healthy upstream endpoint (`UH`).
    NoHealthyUpstream,
    /// Circuit breaker overflow (`UO`).
    UpstreamOverflow,
    /// Upstream request timeout (`UT`).
    UpstreamRequestTimeout,
    /// Upstream connection failure (`UF`).
    UpstreamConnectionFailure,
    /// Upstream retry limit exceeded (`URX`).
    UpstreamRetryLimitExceeded,
    /// Upstream connection terminated (`UC`).
    UpstreamConnectionTermination,
    /// Upstream reset the stream (`UR`).
    UpstreamRemoteReset,
    /// Fault injection abort (`FI`).
    FaultInjected,
    /// Fault injection delay (`DI`).
    DelayInjected,
    /// Downstream connection terminated (`DC`).
    DownstreamConnectionTermination,
}

impl ResponseFlag {
    /// The short code.
    pub fn code(self) -> &'static str {
        match self {
            ResponseFlag::NoRoute => "NR",
            ResponseFlag::NoHealthyUpstream => "UH",
            ResponseFlag::UpstreamOverflow => "UO",
            ResponseFlag::UpstreamRequestTimeout => "UT",
            ResponseFlag::UpstreamConnectionFailure => "UF",
            ResponseFlag::UpstreamRetryLimitExceeded => "URX",
            ResponseFlag::UpstreamConnectionTermination => "UC",
            ResponseFlag::UpstreamRemoteReset => "UR",
            ResponseFlag::FaultInjected => "FI",
            ResponseFlag::DelayInjected => "DI",
            ResponseFlag::DownstreamConnectionTermination => "DC",
        }
    }
}

impl fmt::Display for ResponseFlag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}
