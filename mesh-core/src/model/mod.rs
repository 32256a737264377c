//! The data model every config source translates into.
//!
//! The model follows Envoy's xDS resources, so an xDS control plane maps onto it without loss and
//! an Istio user recognises it:
//!
//! - [`Cluster`]: one per (service host, port, subset), named like Istio
//!   (`outbound|9080|v1|reviews.default.svc.cluster.local`), holding endpoints and the policies
//!   that apply to calls into it.
//! - [`RouteConfiguration`]: per outbound port, virtual hosts matched by authority, each an ordered
//!   list of [`Route`]s.
//! - [`InboundPolicy`]: the PeerAuthentication mode per port and the AuthorizationPolicies that
//!   apply to this workload.
//!
//! A [`Snapshot`] holds all of it, immutable, built and validated whole before it is swapped in.
//! Everything here is plain data: `Clone + Debug + PartialEq + Serialize`, with no runtime state.

mod authz;
mod cluster;
mod duration;
mod ingress;
mod matcher;
mod route;
mod service_account;
mod snapshot;

pub use authz::{
    AuthzAction, AuthzCondition, AuthzOperation, AuthzPolicy, AuthzRule, AuthzSource, ConditionKey,
    IpBlock, StringPattern,
};
pub use cluster::{
    Cluster, ClusterName, ConnectionPool, Endpoint, EndpointAddress, HashKey, HealthStatus,
    LbPolicy, Locality, LocalityFailover, LocalityLbSetting, OutlierDetection, Protocol,
    Resolution, RetryBudget, ServiceKey, TlsMode, UpstreamTls,
};
pub use cluster::{Http2Keepalive, SlowStart, TcpKeepalive, TlsCredential};
pub use duration::{DurationError, format_duration, parse_duration};
pub use ingress::{CaptureMode, DefaultEndpoint, IngressListener};
pub use matcher::{Regex, StringMatch};
pub use route::{
    AbortStatus, FaultAbort, FaultDelay, FaultPolicy, HeaderMatch, HeaderMutation, Mirror, Percent,
    QueryMatch, RetryOn, RetryPolicy, Rewrite, Route, RouteAction, RouteConfiguration, RouteMatch,
    RouteOrigin, VirtualHost, WeightedCluster,
};
pub use service_account::{ServiceAccount, trust_domain_matches};
pub use snapshot::{InboundPolicy, MtlsMode, PeerAuthnPolicy, Snapshot, SnapshotSource};
