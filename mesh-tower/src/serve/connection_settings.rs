//! Server limits from Istio config: `ProxyConfig.connectionSettings`.
//!
//! Istio configures the downstream side of a proxy (listener and HTTP connection manager
//! limits) with `connectionSettings` in a `ProxyConfig`: mesh-wide in
//! `meshConfig.defaultConfig`, or per workload in the `proxy.istio.io/config` annotation
//! (`mesh/v1alpha1/proxy.proto`, `ProxyConfig.ConnectionSettings`). istiod applies it to every
//! HCM it builds (`applyConnectionSettingsToHCM` in
//! `pilot/pkg/networking/core/connection_settings.go`), sidecar inbound included, so the same
//! document sets [`ServeOptions`] here.
//!
//! - A field set explicitly replaces the corresponding default; an unset field keeps mesh's
//!   default (which is never weaker than Envoy's).
//! - `profile: EDGE` fills unset fields with Envoy's edge defaults **for gateways only**
//!   (`applyEdgeProfileDefaults` returns the settings unchanged when the proxy is not a
//!   `Router`); mesh serves a workload, so the profile changes nothing, and says so.
//! - Fields the server cannot enforce are reported as warnings, never silently dropped.
//! - Bad values are errors naming the field. Unlike istiod, which drops a negative value
//!   (`safeUint32`), and Envoy, which reads a zero timeout as "no timeout", mesh refuses both:
//!   a limit must bound something.

use std::time::Duration;

use mesh_core::model::parse_duration;
use serde_json::{Map, Value};

use super::options::{HeadersWithUnderscores, ServeOptions};

/// A `connectionSettings` document that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}: {field}: {reason}")]
pub struct ConnectionSettingsError {
    source_name: String,
    field: String,
    reason: String,
}

impl ConnectionSettingsError {
    /// The field path, such as `connectionSettings.httpIdleTimeout`.
    pub fn field(&self) -> &str {
        &self.field
    }
}

/// The server limits of a `ProxyConfig.connectionSettings`; apply them with
/// [`ServeOptions::connection_settings`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionSettings {
    idle_timeout: Option<Duration>,
    stream_idle_timeout: Option<Duration>,
    request_headers_timeout: Option<Duration>,
    max_concurrent_streams: Option<u32>,
    initial_stream_window_size: Option<u32>,
    initial_connection_window_size: Option<u32>,
    max_connections: Option<usize>,
    headers_with_underscores: Option<HeadersWithUnderscores>,
    warnings: Vec<String>,
}

/// Fields of `connectionSettings` the server reads but cannot enforce, with why.
const NOT_ENFORCED: &[(&str, &str)] = &[
    (
        "listenerPerConnectionBufferLimitBytes",
        "not enforced: the server bounds buffers with HTTP/2 flow-control windows and send \
         buffers (ServeOptions::initial_connection_window_size, max_send_buf_size) instead",
    ),
    (
        "clusterPerConnectionBufferLimitBytes",
        "applies to upstream clusters, not to the inbound server",
    ),
    ("httpMaxConnectionDuration", "not enforced by the server"),
    (
        "httpDrainTimeout",
        "not enforced; ServeOptions::close_grace bounds the time after GOAWAY",
    ),
    ("httpRequestTimeout", "not enforced by the server"),
    ("httpMaxStreamDuration", "not enforced by the server"),
    ("httpMergeSlashes", "not enforced by the server"),
    (
        "httpPathWithEscapedSlashesAction",
        "not enforced by the server",
    ),
];

/// HTTP/2 flow-control windows `proxy.proto` allows: 2^16 - 1 to 2^31 - 1.
const WINDOW: std::ops::RangeInclusive<i64> = 65_535..=2_147_483_647;

impl ConnectionSettings {
    /// Reads the `connectionSettings` of a ProxyConfig written as YAML (or JSON): either the
    /// ProxyConfig itself (the `proxy.istio.io/config` annotation's value) or a MeshConfig
    /// holding it under `defaultConfig`. A document without `connectionSettings` gives the
    /// defaults. `source_name` names the document in errors (a file name, an annotation).
    pub fn from_proxy_config(
        source_name: &str,
        yaml: &str,
    ) -> Result<Self, ConnectionSettingsError> {
        let err = |field: &str, reason: String| ConnectionSettingsError {
            source_name: source_name.to_owned(),
            field: field.to_owned(),
            reason,
        };
        let doc: Value = serde_saphyr::from_str(yaml).map_err(|e| err("", e.to_string()))?;
        let mut prefix = String::new();
        let mut proxy = &doc;
        if let Some(default) = doc.get("defaultConfig") {
            prefix.push_str("defaultConfig.");
            proxy = default;
        }
        prefix.push_str("connectionSettings");
        match proxy.get("connectionSettings") {
            None | Some(Value::Null) => Ok(Self::default()),
            Some(Value::Object(map)) => Self::from_map(map, &prefix)
                .map_err(|(field, reason)| err(&format!("{prefix}.{field}"), reason)),
            Some(_) => Err(err(&prefix, "expected a map".into())),
        }
    }

    fn from_map(map: &Map<String, Value>, prefix: &str) -> Result<Self, (String, String)> {
        let mut out = Self::default();
        for (key, value) in map {
            let bad = |reason: String| (key.clone(), reason);
            if value.is_null() {
                continue;
            }
            match key.as_str() {
                "profile" => match value.as_str() {
                    Some("SIDECAR") => {}
                    Some("EDGE") => out.warnings.push(format!(
                        "{prefix}.profile: EDGE applies to gateways only (istiod \
                         applyEdgeProfileDefaults); the server keeps its own defaults"
                    )),
                    _ => return Err(bad(format!("expected SIDECAR or EDGE, got {value}"))),
                },
                "httpHeadersWithUnderscoresAction" => {
                    out.headers_with_underscores = Some(match value.as_str() {
                        Some(
                            "HEADERS_WITH_UNDERSCORES_UNSPECIFIED"
                            | "HEADERS_WITH_UNDERSCORES_ALLOW",
                        ) => HeadersWithUnderscores::Allow,
                        Some("HEADERS_WITH_UNDERSCORES_REJECT_REQUEST") => {
                            HeadersWithUnderscores::RejectRequest
                        }
                        Some("HEADERS_WITH_UNDERSCORES_DROP_HEADER") => {
                            HeadersWithUnderscores::DropHeader
                        }
                        _ => {
                            return Err(bad(format!(
                                "expected HEADERS_WITH_UNDERSCORES_ALLOW, _REJECT_REQUEST or \
                                 _DROP_HEADER, got {value}"
                            )));
                        }
                    });
                }
                "httpIdleTimeout" => out.idle_timeout = Some(timeout(value).map_err(bad)?),
                "httpStreamIdleTimeout" => {
                    out.stream_idle_timeout = Some(timeout(value).map_err(bad)?);
                }
                "httpRequestHeadersTimeout" => {
                    out.request_headers_timeout = Some(timeout(value).map_err(bad)?);
                }
                "httpMaxConcurrentStreams" => {
                    let n = integer(value, 1..=i64::from(i32::MAX)).map_err(bad)?;
                    out.max_concurrent_streams = Some(u32::try_from(n).unwrap_or(u32::MAX));
                }
                "http2InitialStreamWindowSize" => {
                    out.initial_stream_window_size = Some(window(value).map_err(bad)?);
                }
                "http2InitialConnectionWindowSize" => {
                    out.initial_connection_window_size = Some(window(value).map_err(bad)?);
                }
                // Both limits bound the one listener mesh serves: the smaller wins.
                "listenerConnectionLimit" | "globalDownstreamConnectionLimit" => {
                    let limit = integer(value, 1..=i64::from(i32::MAX)).map_err(bad)?;
                    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
                    out.max_connections = Some(out.max_connections.map_or(limit, |l| l.min(limit)));
                }
                other => match NOT_ENFORCED.iter().find(|(name, _)| *name == other) {
                    Some((_, why)) => out.warnings.push(format!("{prefix}.{other}: {why}")),
                    None => return Err(bad("unknown field".into())),
                },
            }
        }
        Ok(out)
    }

    /// Fields read but not enforced, one line each naming the field.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

fn timeout(value: &Value) -> Result<Duration, String> {
    let text = value
        .as_str()
        .ok_or_else(|| format!("expected a duration such as \"300s\", got {value}"))?;
    let duration = parse_duration(text).map_err(|e| e.to_string())?;
    if duration.is_zero() {
        // Envoy reads 0 as "disabled"; the server never runs without the bound.
        return Err("0 would disable the timeout; the server requires a bound".into());
    }
    Ok(duration)
}

fn integer(value: &Value, range: std::ops::RangeInclusive<i64>) -> Result<i64, String> {
    let n = value
        .as_i64()
        .ok_or_else(|| format!("expected an integer, got {value}"))?;
    if !range.contains(&n) {
        return Err(format!(
            "{n} is out of range {}..={}",
            range.start(),
            range.end()
        ));
    }
    Ok(n)
}

fn window(value: &Value) -> Result<u32, String> {
    let n = integer(value, WINDOW)?;
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

impl ServeOptions {
    /// Applies Istio's `ProxyConfig.connectionSettings` (see [`ConnectionSettings`]): each
    /// field that is set replaces the default of the setter it maps to:
    ///
    /// | field | setter |
    /// | --- | --- |
    /// | `httpIdleTimeout` | [`ServeOptions::idle_timeout`] |
    /// | `httpStreamIdleTimeout` | [`ServeOptions::stream_idle_timeout`] |
    /// | `httpRequestHeadersTimeout` | [`ServeOptions::header_read_timeout`] |
    /// | `httpMaxConcurrentStreams` | [`ServeOptions::max_concurrent_streams`] |
    /// | `http2InitialStreamWindowSize` | [`ServeOptions::initial_stream_window_size`] |
    /// | `http2InitialConnectionWindowSize` | [`ServeOptions::initial_connection_window_size`] |
    /// | `listenerConnectionLimit`, `globalDownstreamConnectionLimit` | [`ServeOptions::max_connections`] (the smaller) |
    /// | `httpHeadersWithUnderscoresAction` | [`ServeOptions::headers_with_underscores`] |
    pub fn connection_settings(mut self, settings: &ConnectionSettings) -> Self {
        if let Some(t) = settings.idle_timeout {
            self = self.idle_timeout(t);
        }
        if let Some(t) = settings.stream_idle_timeout {
            self = self.stream_idle_timeout(t);
        }
        if let Some(t) = settings.request_headers_timeout {
            self = self.header_read_timeout(t);
        }
        if let Some(n) = settings.max_concurrent_streams {
            self = self.max_concurrent_streams(n);
        }
        if let Some(n) = settings.initial_stream_window_size {
            self = self.initial_stream_window_size(n);
        }
        if let Some(n) = settings.initial_connection_window_size {
            self = self.initial_connection_window_size(n);
        }
        if let Some(n) = settings.max_connections {
            self = self.max_connections(n);
        }
        if let Some(action) = settings.headers_with_underscores {
            self = self.headers_with_underscores(action);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(yaml: &str) -> Result<ConnectionSettings, ConnectionSettingsError> {
        ConnectionSettings::from_proxy_config("proxy.yaml", yaml)
    }

    /// Every limit `connection_settings` may change.
    fn limits(o: &ServeOptions) -> (Duration, Duration, Duration, u32, u32, u32, usize, usize) {
        (
            o.idle_timeout,
            o.stream_idle_timeout,
            o.header_read_timeout,
            o.max_concurrent_streams,
            o.initial_stream_window_size,
            o.initial_connection_window_size,
            o.max_connections,
            o.connection_high_water,
        )
    }

    #[test]
    fn fields_map_onto_the_server_limits() {
        let yaml = "connectionSettings:
  httpIdleTimeout: 10m
  httpStreamIdleTimeout: 30s
  httpRequestHeadersTimeout: 5s
  httpMaxConcurrentStreams: 7
  http2InitialStreamWindowSize: 131072
  http2InitialConnectionWindowSize: 2097152
  listenerConnectionLimit: 500
  globalDownstreamConnectionLimit: 300
  httpHeadersWithUnderscoresAction: HEADERS_WITH_UNDERSCORES_REJECT_REQUEST
";
        let settings = read(yaml).unwrap();
        assert!(settings.warnings().is_empty(), "{:?}", settings.warnings());
        let o = ServeOptions::new().connection_settings(&settings);
        assert_eq!(o.get_idle_timeout(), Duration::from_secs(600));
        assert_eq!(o.get_stream_idle_timeout(), Duration::from_secs(30));
        assert_eq!(o.header_read_timeout, Duration::from_secs(5));
        assert_eq!(o.get_max_concurrent_streams(), 7);
        assert_eq!(o.initial_stream_window_size, 131_072);
        assert_eq!(o.initial_connection_window_size, 2_097_152);
        assert_eq!(o.get_max_connections(), 300);
        assert_eq!(o.get_connection_high_water(), 270);
        assert_eq!(
            o.headers_with_underscores,
            HeadersWithUnderscores::RejectRequest
        );
    }

    #[test]
    fn unset_fields_keep_the_defaults() {
        let defaults = limits(&ServeOptions::new());
        for yaml in ["concurrency: 2", "connectionSettings: {}", "{}"] {
            let o = ServeOptions::new().connection_settings(&read(yaml).unwrap());
            assert_eq!(limits(&o), defaults, "{yaml}");
        }
        let partial = ServeOptions::new()
            .connection_settings(&read("connectionSettings: {httpIdleTimeout: 2h}").unwrap());
        assert_eq!(partial.get_idle_timeout(), Duration::from_secs(7200));
        assert_eq!(partial.get_stream_idle_timeout(), Duration::from_secs(300));
    }

    #[test]
    fn a_mesh_config_default_config_is_read_too() {
        let yaml = "defaultConfig:\n  connectionSettings:\n    httpStreamIdleTimeout: 1m\n";
        let o = ServeOptions::new().connection_settings(&read(yaml).unwrap());
        assert_eq!(o.get_stream_idle_timeout(), Duration::from_secs(60));
        let e =
            read("defaultConfig:\n  connectionSettings:\n    httpIdleTimeout: 0s\n").unwrap_err();
        assert_eq!(
            e.field(),
            "defaultConfig.connectionSettings.httpIdleTimeout"
        );
    }

    #[test]
    fn fields_not_enforced_are_warned_about_by_name() {
        let yaml = "connectionSettings:
  profile: EDGE
  httpMergeSlashes: true
  clusterPerConnectionBufferLimitBytes: 32768
";
        let settings = read(yaml).unwrap();
        let w = settings.warnings();
        assert_eq!(w.len(), 3, "{w:?}");
        for start in [
            "connectionSettings.profile: EDGE applies to gateways only",
            "connectionSettings.httpMergeSlashes: ",
            "connectionSettings.clusterPerConnectionBufferLimitBytes: ",
        ] {
            assert!(w.iter().any(|w| w.starts_with(start)), "{start}: {w:?}");
        }
        // EDGE (a gateway profile in istiod) does not change the server's defaults.
        let o = ServeOptions::new().connection_settings(&settings);
        assert_eq!(limits(&o), limits(&ServeOptions::new()));
    }

    #[test]
    fn bad_values_are_errors_naming_the_field() {
        for (yaml, field, reason) in [
            ("httpIdleTimeout: 0s", "httpIdleTimeout", "disable"),
            (
                "httpStreamIdleTimeout: 5",
                "httpStreamIdleTimeout",
                "duration",
            ),
            (
                "httpRequestHeadersTimeout: -1s",
                "httpRequestHeadersTimeout",
                "negative",
            ),
            (
                "httpMaxConcurrentStreams: -1",
                "httpMaxConcurrentStreams",
                "out of range",
            ),
            (
                "httpMaxConcurrentStreams: 0",
                "httpMaxConcurrentStreams",
                "out of range",
            ),
            (
                "http2InitialStreamWindowSize: 1024",
                "http2InitialStreamWindowSize",
                "out of range",
            ),
            (
                "listenerConnectionLimit: many",
                "listenerConnectionLimit",
                "integer",
            ),
            ("profile: GATEWAY", "profile", "SIDECAR or EDGE"),
            (
                "httpHeadersWithUnderscoresAction: REJECT",
                "httpHeadersWithUnderscoresAction",
                "expected",
            ),
            ("httpIdleTimout: 1h", "httpIdleTimout", "unknown field"),
        ] {
            let e = read(&format!("connectionSettings:\n  {yaml}\n")).unwrap_err();
            assert_eq!(e.field(), format!("connectionSettings.{field}"), "{yaml}");
            let text = e.to_string();
            assert!(
                text.starts_with("proxy.yaml: connectionSettings."),
                "{text}"
            );
            assert!(text.contains(reason), "{yaml}: {text}");
        }
        assert!(read("connectionSettings: [1]").is_err());
    }
}
