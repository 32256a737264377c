//! gRPC status codes by name, as the gRPC spec (`doc/statuscodes.md`) names them: for
//! VirtualService fault aborts (`grpcStatus: "UNAVAILABLE"`) and for showing codes in the
//! service map and `mesh top`.

/// The names of gRPC status codes 0 to 16, by code.
const NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// The name of gRPC status `code` (`14` → `UNAVAILABLE`); `None` past 16.
///
/// ```
/// assert_eq!(mesh_core::telemetry::grpc_status_name(14), Some("UNAVAILABLE"));
/// assert_eq!(mesh_core::telemetry::grpc_status_name(17), None);
/// ```
pub fn grpc_status_name(code: u16) -> Option<&'static str> {
    NAMES.get(usize::from(code)).copied()
}

/// The code of the gRPC status named `name`, exactly as the spec spells it (upper case).
///
/// ```
/// assert_eq!(mesh_core::telemetry::grpc_status_code("PERMISSION_DENIED"), Some(7));
/// assert_eq!(mesh_core::telemetry::grpc_status_code("denied"), None);
/// ```
pub fn grpc_status_code(name: &str) -> Option<u16> {
    NAMES
        .iter()
        .position(|n| *n == name)
        .and_then(|i| u16::try_from(i).ok())
}
