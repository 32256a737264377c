//! Instants as certificates and rustls see them: whole seconds since the Unix epoch.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls_pki_types::UnixTime;

/// A certificate validity bound or a "now", in seconds since the Unix epoch; displayed in UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Seconds since the epoch.
    pub fn unix_seconds(self) -> i64 {
        self.0
    }

    /// As a [`SystemTime`] (clamped at the epoch).
    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(u64::try_from(self.0).unwrap_or(0))
    }
}

impl From<UnixTime> for Timestamp {
    fn from(t: UnixTime) -> Self {
        Self(i64::try_from(t.as_secs()).unwrap_or(i64::MAX))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match x509_parser::time::ASN1Time::from_timestamp(self.0) {
            Ok(t) => write!(f, "{t}"),
            Err(_) => write!(f, "@{}", self.0),
        }
    }
}
