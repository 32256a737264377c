//! Edge health as Kiali judges it: the response-code breakdown of an edge, and its status
//! under Kiali's default traffic-health thresholds.
//!
//! A success rate that counts only 5xx as failures shows an edge whose every call is refused
//! with 403 / `PERMISSION_DENIED` as 100 % green. Kiali does not: it rates each protocol's
//! error codes against its own tolerance (`health_config.rate` in the Kiali CR; defaults in
//! kiali's `config/config.go`, documented at <https://kiali.io/docs/configuration/health>):
//!
//! | protocol | codes | degraded when the share is | failure when the share is |
//! | --- | --- | --- | --- |
//! | http | `^5\d\d$` | > 0 % | > 10 % |
//! | http | `^4\d\d$` | > 10 % | > 20 % |
//! | grpc | `^[1-9]$\|^1[0-6]$` (every status but OK) | > 0 % | > 10 % |
//!
//! Each share is over the requests of that protocol; the edge takes the worst status
//! (kiali `frontend/src/utils/TrafficRate.ts` and `types/ErrorRate`: `getRequestErrorsStatus`
//! compares `ratio > tolerance`). A request that got no response (code `0`, as Envoy logs
//! it) is counted with the 5xx: it failed on the server's side of the call.
//!
//! Denials (HTTP 401/403, gRPC `UNAUTHENTICATED`/`PERMISSION_DENIED`) are shown apart: they
//! are the caller's error to Istio's success rate, but an edge made only of them is not
//! healthy.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use mesh_core::telemetry::{RequestProtocol, RequestRecord, grpc_status_code, grpc_status_name};
use serde::{Deserialize, Serialize};

/// What a request ended with, as a response-code breakdown counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResponseCode {
    /// An HTTP status (`0`: no response was sent).
    Http(u16),
    /// A gRPC status (`grpc-status`), for gRPC requests that carried one.
    Grpc(u8),
}

impl ResponseCode {
    /// The code of a finished request: its gRPC status for gRPC (when one was received),
    /// else its HTTP status.
    pub fn of(r: &RequestRecord) -> Self {
        match (r.protocol, r.grpc_status) {
            (RequestProtocol::Grpc, Some(s)) => match u8::try_from(s) {
                Ok(s) if s <= 16 => Self::Grpc(s),
                // Not a gRPC status (2 = UNKNOWN is what gRPC maps those to).
                _ => Self::Grpc(2),
            },
            _ => Self::Http(r.response_code.unwrap_or(0)),
        }
    }

    /// The class Kiali and the map show it as.
    pub fn class(self) -> CodeClass {
        match self {
            Self::Http(401 | 403) | Self::Grpc(7 | 16) => CodeClass::Denied,
            Self::Http(0) | Self::Http(500..) => CodeClass::ServerError,
            Self::Http(400..=499) => CodeClass::ClientError,
            Self::Http(_) | Self::Grpc(0) => CodeClass::Success,
            // CANCELLED, INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION,
            // OUT_OF_RANGE: the caller's error, as Istio's success rate counts them.
            Self::Grpc(1 | 3 | 5 | 6 | 9 | 11) => CodeClass::ClientError,
            Self::Grpc(_) => CodeClass::ServerError,
        }
    }
}

impl fmt::Display for ResponseCode {
    /// HTTP codes as numbers (`403`), gRPC statuses by name (`PERMISSION_DENIED`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Http(c) => write!(f, "{c}"),
            Self::Grpc(s) => f.write_str(grpc_status_name(u16::from(*s)).unwrap_or("UNKNOWN")),
        }
    }
}

impl FromStr for ResponseCode {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        if let Some(code) = grpc_status_code(s) {
            return u8::try_from(code).map(Self::Grpc).map_err(|_| ());
        }
        s.parse().map(Self::Http).map_err(|_| ())
    }
}

/// How a response code counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeClass {
    /// 1xx–3xx, gRPC OK.
    Success,
    /// Other 4xx and the gRPC statuses that are the caller's error.
    ClientError,
    /// Refused by policy: 401/403, `UNAUTHENTICATED`/`PERMISSION_DENIED`.
    Denied,
    /// 5xx, no response, and the gRPC statuses that mean the server failed.
    ServerError,
}

/// An edge's status under Kiali's default thresholds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// No requests in the window (`idle`).
    #[default]
    #[serde(rename = "idle")]
    NoTraffic,
    /// Every share under its degraded threshold.
    Healthy,
    /// Some share over its degraded threshold.
    Degraded,
    /// Some share over its failure threshold.
    Failure,
}

impl Health {
    /// The name shown (`healthy`, `degraded`, `failure`, `idle`).
    pub fn as_str(self) -> &'static str {
        match self {
            Health::NoTraffic => "idle",
            Health::Healthy => "healthy",
            Health::Degraded => "degraded",
            Health::Failure => "failure",
        }
    }
}

/// One Kiali tolerance: the status a share of requests (in percent) earns.
fn tolerance(share_pct: f64, degraded: f64, failure: f64) -> Health {
    if share_pct > failure {
        Health::Failure
    } else if share_pct > degraded {
        Health::Degraded
    } else {
        Health::Healthy
    }
}

/// The breakdown of an edge's requests by class, and its health.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EdgeHealth {
    /// Share of requests that succeeded, percent.
    pub success_pct: f64,
    /// Share of requests that got a 4xx or a client-side gRPC status, denials included.
    pub client_error_pct: f64,
    /// Share of requests refused by policy (a part of `client_error_pct`), percent.
    pub denied_pct: f64,
    /// Share of requests that failed on the server side (5xx, no response, server gRPC codes).
    pub server_error_pct: f64,
    /// The status under Kiali's default thresholds.
    pub health: Health,
}

impl EdgeHealth {
    /// Rates a response-code breakdown.
    pub fn of(codes: &BTreeMap<ResponseCode, u64>) -> Self {
        let (mut total, mut ok, mut client, mut denied, mut server) = (0u64, 0, 0, 0, 0);
        let (mut http, mut http_4xx, mut http_5xx, mut grpc, mut grpc_bad) = (0u64, 0, 0, 0, 0);
        for (code, &n) in codes {
            total += n;
            match code.class() {
                CodeClass::Success => ok += n,
                CodeClass::ClientError => client += n,
                CodeClass::Denied => {
                    client += n;
                    denied += n;
                }
                CodeClass::ServerError => server += n,
            }
            match code {
                ResponseCode::Http(c) => {
                    http += n;
                    match c {
                        400..=499 => http_4xx += n,
                        0 | 500.. => http_5xx += n,
                        _ => {}
                    }
                }
                ResponseCode::Grpc(s) => {
                    grpc += n;
                    if *s != 0 {
                        grpc_bad += n;
                    }
                }
            }
        }
        if total == 0 {
            return Self::default();
        }
        let pct = |n: u64, of: u64| {
            if of == 0 {
                0.0
            } else {
                100.0 * n as f64 / of as f64
            }
        };
        let health = tolerance(pct(http_5xx, http), 0.0, 10.0)
            .max(tolerance(pct(http_4xx, http), 10.0, 20.0))
            .max(tolerance(pct(grpc_bad, grpc), 0.0, 10.0));
        Self {
            success_pct: pct(ok, total),
            client_error_pct: pct(client, total),
            denied_pct: pct(denied, total),
            server_error_pct: pct(server, total),
            health,
        }
    }
}

/// A breakdown keyed by code names (`"200"`, `"PERMISSION_DENIED"`), as `/graph` serves it.
pub fn codes_by_name(codes: &BTreeMap<ResponseCode, u64>) -> BTreeMap<String, u64> {
    codes.iter().map(|(c, n)| (c.to_string(), *n)).collect()
}

/// The breakdown back from its names; names that are not codes are dropped.
pub fn codes_from_names(names: &BTreeMap<String, u64>) -> BTreeMap<ResponseCode, u64> {
    let mut out = BTreeMap::new();
    for (name, n) in names {
        if let Ok(c) = name.parse::<ResponseCode>() {
            *out.entry(c).or_insert(0) += n;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(codes: &[(ResponseCode, u64)]) -> EdgeHealth {
        EdgeHealth::of(&codes.iter().copied().collect())
    }

    /// Kiali's default `health_config.rate` tolerances (kiali `config/config.go`,
    /// https://kiali.io/docs/configuration/health): 5xx degraded > 0 %, failure > 10 %;
    /// 4xx degraded > 10 %, failure > 20 %; gRPC non-OK degraded > 0 %, failure > 10 %.
    #[test]
    fn kiali_default_thresholds() {
        use ResponseCode::{Grpc, Http};
        assert_eq!(rate(&[]).health, Health::NoTraffic);
        assert_eq!(rate(&[(Http(200), 100)]).health, Health::Healthy);
        assert_eq!(
            rate(&[(Http(200), 999), (Http(503), 1)]).health,
            Health::Degraded
        );
        assert_eq!(
            rate(&[(Http(200), 90), (Http(503), 10)]).health,
            Health::Degraded
        );
        assert_eq!(
            rate(&[(Http(200), 89), (Http(503), 11)]).health,
            Health::Failure
        );
        assert_eq!(
            rate(&[(Http(200), 90), (Http(404), 10)]).health,
            Health::Healthy
        );
        assert_eq!(
            rate(&[(Http(200), 85), (Http(404), 15)]).health,
            Health::Degraded
        );
        assert_eq!(
            rate(&[(Http(200), 79), (Http(404), 21)]).health,
            Health::Failure
        );
        assert_eq!(
            rate(&[(Grpc(0), 999), (Grpc(5), 1)]).health,
            Health::Degraded
        );
        assert_eq!(rate(&[(Grpc(0), 1), (Grpc(7), 99)]).health, Health::Failure);
        // Shares are per protocol: 5 % of gRPC traffic failing is over gRPC's 0 % line.
        let mixed = rate(&[(Http(200), 95), (Grpc(0), 0), (Grpc(14), 5)]);
        assert_eq!(mixed.health, Health::Failure);
    }

    /// An edge every call of which is denied is not green: 100 % denied, 0 % success.
    #[test]
    fn denied_edge_is_shown_apart_and_fails() {
        let h = rate(&[(ResponseCode::Grpc(7), 40)]);
        assert_eq!(h.success_pct, 0.0);
        assert_eq!(h.denied_pct, 100.0);
        assert_eq!(h.client_error_pct, 100.0);
        assert_eq!(h.server_error_pct, 0.0);
        assert_eq!(h.health, Health::Failure);
        let h = rate(&[(ResponseCode::Http(403), 1), (ResponseCode::Http(200), 3)]);
        assert_eq!((h.success_pct, h.denied_pct), (75.0, 25.0));
        assert_eq!(h.health, Health::Failure);
    }

    #[test]
    fn codes_round_trip_by_name() {
        let codes: BTreeMap<_, _> = [
            (ResponseCode::Http(0), 1),
            (ResponseCode::Http(403), 2),
            (ResponseCode::Grpc(0), 3),
            (ResponseCode::Grpc(16), 4),
        ]
        .into_iter()
        .collect();
        let names = codes_by_name(&codes);
        assert_eq!(names.get("UNAUTHENTICATED"), Some(&4));
        assert_eq!(names.get("0"), Some(&1));
        assert_eq!(codes_from_names(&names), codes);
    }
}
