//! Where spans go and how many are kept: [`TraceConfig`], read from the OpenTelemetry
//! environment variables ([`TraceConfig::from_env`]) or from an Istio MeshConfig
//! (`extensionProviders[].opentelemetry` + `defaultConfig.tracing.sampling`,
//! [`TraceConfig::from_mesh_config`]).
//!
//! Pure parsing: nothing here opens a socket. A value mesh cannot use is an error naming the
//! variable or field, never silently ignored.

use std::time::Duration;

use serde::Deserialize;

/// How spans are sent to the collector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP over gRPC (`grpc`, port 4317).
    Grpc,
    /// OTLP over HTTP with protobuf bodies (`http/protobuf`, port 4318, path `/v1/traces`).
    HttpProtobuf,
}

/// Tracing settings: the OTLP endpoint, the sampling percentage and the batch queue.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceConfig {
    /// Collector endpoint: `http://host:4317` for gRPC; for HTTP the full URL of the traces
    /// resource (`http://host:4318/v1/traces`).
    pub endpoint: String,
    /// OTLP transport.
    pub protocol: Protocol,
    /// Percentage (0–100) of the traces mesh starts that are sampled (Istio's
    /// `tracing.sampling`). A caller's decision is always honoured.
    pub sampling_percent: f64,
    /// `service.name` of every span; by default each workload's `<canonical service>.<namespace>`
    /// (Istio's service cluster).
    pub service_name: Option<String>,
    /// More resource attributes (`OTEL_RESOURCE_ATTRIBUTES`).
    pub resource_attributes: Vec<(String, String)>,
    /// Spans waiting for export; past this, spans are dropped and counted.
    pub max_queue_size: usize,
    /// Spans sent in one export request.
    pub max_export_batch_size: usize,
    /// Longest wait before a partial batch is sent.
    pub scheduled_delay: Duration,
    /// Time allowed to one export request.
    pub export_timeout: Duration,
    /// Longest attribute value; longer ones are cut (Envoy's `max_tag_length`, 256).
    pub max_tag_length: usize,
    /// Istio's mesh id (`istio.mesh_id`); Istio defaults it to the trust domain.
    pub mesh_id: String,
    /// This instance's IP, for `node_id` (Istio's `INSTANCE_IP`).
    pub instance_ip: String,
}

impl TraceConfig {
    /// A config exporting to `endpoint` over `protocol`, with the OpenTelemetry SDK's batch
    /// defaults and Istio's default sampling of 1%.
    pub fn new(endpoint: impl Into<String>, protocol: Protocol) -> Self {
        Self {
            endpoint: endpoint.into(),
            protocol,
            sampling_percent: 1.0,
            service_name: None,
            resource_attributes: Vec::new(),
            max_queue_size: 2048,
            max_export_batch_size: 512,
            scheduled_delay: Duration::from_secs(5),
            export_timeout: Duration::from_secs(10),
            max_tag_length: 256,
            mesh_id: "cluster.local".into(),
            instance_ip: "0.0.0.0".into(),
        }
    }

    /// The standard OpenTelemetry variables of this process; see [`TraceConfig::from_vars`].
    pub fn from_env() -> Result<Option<Self>, TraceConfigError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// Reads `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT`,
    /// `OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL` (`grpc`, `http/protobuf`; the specification's
    /// default is `http/protobuf`), `OTEL_TRACES_SAMPLER` + `OTEL_TRACES_SAMPLER_ARG`,
    /// `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_BSP_*`, `INSTANCE_IP` and
    /// `ISTIO_META_MESH_ID` through `var`. `None` (tracing off) when no endpoint is set, or
    /// `OTEL_SDK_DISABLED=true`, or `OTEL_TRACES_EXPORTER=none`.
    pub fn from_vars(
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, TraceConfigError> {
        let get = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        if get("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        match get("OTEL_TRACES_EXPORTER").as_deref() {
            None | Some("otlp") => {}
            Some("none") => return Ok(None),
            Some(other) => {
                return Err(TraceConfigError::env(
                    "OTEL_TRACES_EXPORTER",
                    format!("`{other}`: mesh exports only `otlp` (or `none`)"),
                ));
            }
        }
        let protocol = match get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| get("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .as_deref()
        {
            None | Some("http/protobuf") => Protocol::HttpProtobuf,
            Some("grpc") => Protocol::Grpc,
            Some(other) => {
                return Err(TraceConfigError::env(
                    "OTEL_EXPORTER_OTLP_PROTOCOL",
                    format!("`{other}`: expected `grpc` or `http/protobuf`"),
                ));
            }
        };
        // The signal-specific variable is the URL as is; the generic one is a base URL to
        // which HTTP appends `/v1/traces` (OTLP exporter specification).
        let endpoint = match (
            get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            get("OTEL_EXPORTER_OTLP_ENDPOINT"),
        ) {
            (Some(url), _) => url,
            (None, Some(base)) if protocol == Protocol::HttpProtobuf => {
                format!("{}/v1/traces", base.trim_end_matches('/'))
            }
            (None, Some(base)) => base,
            (None, None) => return Ok(None),
        };
        check_url("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)?;
        let mut config = Self::new(endpoint, protocol);
        config.sampling_percent = sampler_percent(
            get("OTEL_TRACES_SAMPLER").as_deref(),
            get("OTEL_TRACES_SAMPLER_ARG").as_deref(),
        )?;
        config.service_name = get("OTEL_SERVICE_NAME");
        if let Some(attrs) = get("OTEL_RESOURCE_ATTRIBUTES") {
            config.resource_attributes = parse_resource_attributes(&attrs)?;
        }
        let number = |name: &str| -> Result<Option<u64>, TraceConfigError> {
            get(name)
                .map(|v| {
                    v.trim()
                        .parse::<u64>()
                        .map_err(|_| TraceConfigError::env(name, format!("`{v}` is not a number")))
                })
                .transpose()
        };
        if let Some(n) = number("OTEL_BSP_MAX_QUEUE_SIZE")? {
            config.max_queue_size = usize::try_from(n).unwrap_or(usize::MAX).max(1);
        }
        if let Some(n) = number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE")? {
            config.max_export_batch_size = usize::try_from(n).unwrap_or(usize::MAX).max(1);
        }
        if let Some(ms) = number("OTEL_BSP_SCHEDULE_DELAY")? {
            config.scheduled_delay = Duration::from_millis(ms);
        }
        if let Some(ms) = number("OTEL_BSP_EXPORT_TIMEOUT")? {
            config.export_timeout = Duration::from_millis(ms);
        }
        if let Some(ip) = get("INSTANCE_IP") {
            config.instance_ip = ip;
        }
        if let Some(id) = get("ISTIO_META_MESH_ID") {
            config.mesh_id = id;
        }
        Ok(Some(config))
    }

    /// Reads an Istio MeshConfig (the `mesh` key of the `istio` ConfigMap): the provider named
    /// by `defaultProviders.tracing` (or the only `opentelemetry` provider) and
    /// `defaultConfig.tracing.sampling` (Istio's default 1%). `None` when no OpenTelemetry
    /// tracing provider is configured. The collector is reached at `service:port`; an `http`
    /// block selects OTLP/HTTP (`path`, default `/v1/traces`).
    pub fn from_mesh_config(yaml: &str) -> Result<Option<Self>, TraceConfigError> {
        Self::from_mesh_config_with(yaml, |name| std::env::var(name).ok())
    }

    /// [`TraceConfig::from_mesh_config`] reading the process environment through `var`: the
    /// provider's `resourceDetectors.environment` takes the resource attributes from
    /// `OTEL_RESOURCE_ATTRIBUTES`, as Istio's environment detector does.
    pub fn from_mesh_config_with(
        yaml: &str,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, TraceConfigError> {
        let mesh: MeshConfig =
            serde_saphyr::from_str(yaml).map_err(|e| TraceConfigError::MeshConfig {
                field: String::new(),
                reason: e.to_string(),
            })?;
        let wanted = mesh.default_providers.tracing.first();
        let mut providers = mesh
            .extension_providers
            .iter()
            .enumerate()
            .filter(|(_, p)| p.opentelemetry.is_some());
        let found = match wanted {
            Some(name) => mesh
                .extension_providers
                .iter()
                .enumerate()
                .find(|(_, p)| &p.name == name),
            None => providers.next(),
        };
        let Some((index, provider)) = found else {
            return match wanted {
                Some(name) => Err(TraceConfigError::mesh(
                    "defaultProviders.tracing",
                    format!("no extensionProvider named `{name}`"),
                )),
                None => Ok(None),
            };
        };
        let field = |f: &str| format!("extensionProviders[{index}].opentelemetry.{f}");
        let Some(otel) = &provider.opentelemetry else {
            return Err(TraceConfigError::mesh(
                &format!("extensionProviders[{index}]"),
                format!(
                    "provider `{}` is not an `opentelemetry` provider (mesh exports OTLP only)",
                    provider.name
                ),
            ));
        };
        if otel.service.is_empty() {
            return Err(TraceConfigError::mesh(&field("service"), "required".into()));
        }
        if otel.port == 0 {
            return Err(TraceConfigError::mesh(&field("port"), "required".into()));
        }
        if otel.dynatrace_sampler.is_some() {
            return Err(TraceConfigError::mesh(
                &field("dynatraceSampler"),
                "not supported by mesh; use defaultConfig.tracing.sampling".into(),
            ));
        }
        if otel.grpc.is_some() {
            return Err(TraceConfigError::mesh(
                &field("grpc"),
                "gRPC timeout and initial metadata are not supported by mesh".into(),
            ));
        }
        let mut environment = false;
        if let Some(detectors) = &otel.resource_detectors {
            if detectors.dynatrace.is_some() {
                return Err(TraceConfigError::mesh(
                    &field("resourceDetectors.dynatrace"),
                    "not supported by mesh (the environment detector is)".into(),
                ));
            }
            environment = detectors.environment.is_some();
        }
        let host = &otel.service;
        let mut config = match &otel.http {
            Some(http) => {
                let path = if http.path.is_empty() {
                    "/v1/traces".to_owned()
                } else if http.path.starts_with('/') {
                    http.path.clone()
                } else {
                    format!("/{}", http.path)
                };
                let mut c = Self::new(
                    format!("http://{host}:{}{path}", otel.port),
                    Protocol::HttpProtobuf,
                );
                if let Some(t) = &http.timeout {
                    c.export_timeout = parse_duration(t).ok_or_else(|| {
                        TraceConfigError::mesh(
                            &field("http.timeout"),
                            format!("`{t}` is not a duration"),
                        )
                    })?;
                }
                c
            }
            None => Self::new(format!("http://{host}:{}", otel.port), Protocol::Grpc),
        };
        if environment
            && let Some(attrs) = var("OTEL_RESOURCE_ATTRIBUTES").filter(|v| !v.trim().is_empty())
        {
            config.resource_attributes = parse_resource_attributes(&attrs)?;
        }
        if let Some(n) = otel.max_tag_length {
            config.max_tag_length = n as usize;
        }
        if let Some(p) = mesh.default_config.tracing.sampling {
            if !(0.0..=100.0).contains(&p) {
                return Err(TraceConfigError::mesh(
                    "defaultConfig.tracing.sampling",
                    format!("{p} is not a percentage in [0, 100]"),
                ));
            }
            config.sampling_percent = p;
        }
        Ok(Some(config))
    }
}

/// The sampling percentage an `OTEL_TRACES_SAMPLER` stands for. mesh always honours a caller's
/// decision (as Istio's proxies do), so the `parentbased_` forms and the plain ones differ only
/// for the traces mesh starts.
fn sampler_percent(sampler: Option<&str>, arg: Option<&str>) -> Result<f64, TraceConfigError> {
    let ratio = || -> Result<f64, TraceConfigError> {
        let Some(arg) = arg else { return Ok(100.0) };
        match arg.trim().parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => Ok(r * 100.0),
            _ => Err(TraceConfigError::env(
                "OTEL_TRACES_SAMPLER_ARG",
                format!("`{arg}` is not a ratio in [0, 1]"),
            )),
        }
    };
    match sampler.unwrap_or("parentbased_always_on") {
        "always_on" | "parentbased_always_on" => Ok(100.0),
        "always_off" | "parentbased_always_off" => Ok(0.0),
        "traceidratio" | "parentbased_traceidratio" => ratio(),
        other => Err(TraceConfigError::env(
            "OTEL_TRACES_SAMPLER",
            format!(
                "`{other}` is not supported (always_on, always_off, traceidratio and their parentbased_ forms are)"
            ),
        )),
    }
}

/// `key1=value1,key2=value2` (W3C Baggage form, values percent-decoded is not needed for the
/// plain values people write; a pair without `=` is an error).
fn parse_resource_attributes(s: &str) -> Result<Vec<(String, String)>, TraceConfigError> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
            _ => Err(TraceConfigError::env(
                "OTEL_RESOURCE_ATTRIBUTES",
                format!("`{pair}` is not key=value"),
            )),
        })
        .collect()
}

fn check_url(name: &str, url: &str) -> Result<(), TraceConfigError> {
    match url.parse::<http::Uri>() {
        Ok(u) if u.scheme().is_some() && u.authority().is_some() => Ok(()),
        _ => Err(TraceConfigError::env(
            name,
            format!("`{url}` is not an absolute http(s) URL"),
        )),
    }
}

/// Protobuf JSON durations: `5s`, `0.5s`, `100ms`.
fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if let Some(ms) = s.strip_suffix("ms") {
        return ms.parse::<u64>().ok().map(Duration::from_millis);
    }
    let secs = s.strip_suffix('s')?.parse::<f64>().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// A tracing setting mesh cannot use.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TraceConfigError {
    /// An environment variable.
    #[error("{name}: {reason}")]
    Env {
        /// The variable.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A MeshConfig field.
    #[error("MeshConfig: {field}: {reason}")]
    MeshConfig {
        /// The field path.
        field: String,
        /// What is wrong.
        reason: String,
    },
}

impl TraceConfigError {
    fn env(name: &str, reason: String) -> Self {
        Self::Env {
            name: name.to_owned(),
            reason,
        }
    }

    fn mesh(field: &str, reason: String) -> Self {
        Self::MeshConfig {
            field: field.to_owned(),
            reason,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct MeshConfig {
    extension_providers: Vec<ExtensionProvider>,
    default_providers: DefaultProviders,
    default_config: DefaultConfig,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DefaultProviders {
    tracing: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DefaultConfig {
    tracing: TracingDefaults,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TracingDefaults {
    sampling: Option<f64>,
}

#[derive(Deserialize)]
struct ExtensionProvider {
    name: String,
    opentelemetry: Option<OtelProvider>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct OtelProvider {
    #[serde(default)]
    service: String,
    #[serde(default)]
    port: u16,
    #[serde(default, alias = "max_tag_length")]
    max_tag_length: Option<u32>,
    #[serde(default)]
    http: Option<OtelHttp>,
    #[serde(default)]
    grpc: Option<serde_json::Value>,
    #[serde(default, alias = "resource_detectors")]
    resource_detectors: Option<ResourceDetectors>,
    #[serde(default, alias = "dynatrace_sampler")]
    dynatrace_sampler: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResourceDetectors {
    #[serde(default)]
    environment: Option<serde_json::Value>,
    #[serde(default)]
    dynatrace: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OtelHttp {
    #[serde(default)]
    path: String,
    #[serde(default)]
    timeout: Option<String>,
}
