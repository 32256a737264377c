//! `mesh explain`: where would this request go, and under which policies? Answers without any
//! network, from the same routing code the client runs: a short summary for people, or every
//! detail as JSON (`--json`). The caller is a workload of `--namespace` with `--source-labels`,
//! so `sourceLabels` and `sourceNamespace` matches are decided as for that workload.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use mesh_core::model::{RouteAction, RouteOrigin, Snapshot};
use mesh_core::routing::{self, RequestInfo};
use mesh_core::{BuildContext, Workload, istio};
use serde_json::{Value, json};

use super::CliError as CommandError;

/// Print the route a request takes and the policies that apply to it (`--json` for all).
#[derive(Debug, Args)]
pub(crate) struct Explain {
    /// Istio YAML files or directories.
    #[arg(long = "config", required = true)]
    config: Vec<PathBuf>,
    /// Namespace of the calling workload (short hosts resolve in it).
    #[arg(long, default_value = "default")]
    namespace: String,
    /// Labels of the calling workload, `key=value,key=value` (for `sourceLabels` matches).
    #[arg(long = "source-labels", value_parser = parse_labels, default_value = "")]
    source_labels: BTreeMap<String, String>,
    /// Print everything as JSON instead of a summary.
    #[arg(long)]
    json: bool,
    /// Request header, `name: value` (repeatable).
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
    /// Request method.
    #[arg(short = 'X', long = "request", default_value = "GET")]
    method: String,
    /// The request URL, e.g. `http://reviews:9080/reviews/1`.
    url: String,
}

impl Explain {
    pub(crate) fn run(self) -> Result<ExitCode, CommandError> {
        let uri: http::Uri = self
            .url
            .parse()
            .map_err(|e| format!("invalid URL {:?}: {e}", self.url))?;
        let authority = uri
            .authority()
            .ok_or_else(|| format!("URL {:?} has no host", self.url))?;
        let port = authority
            .port_u16()
            .unwrap_or(if uri.scheme_str() == Some("https") {
                443
            } else {
                80
            });
        let mut headers = BTreeMap::new();
        for h in &self.headers {
            let (name, value) = h
                .split_once(':')
                .ok_or_else(|| format!("header {h:?} is not `name: value`"))?;
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
        let path = uri.path_and_query().map_or("/", |p| p.as_str());

        let ctx = BuildContext {
            workload: Workload::new(self.namespace.clone(), "default")
                .labels(self.source_labels.clone()),
            ..Default::default()
        };
        let snapshot = match istio::load_paths(&self.config, &ctx) {
            Ok(s) => s,
            Err(err) => {
                let mut render = super::check::Renderer::default();
                for d in err.errors() {
                    eprintln!("error: {}", render.render(d));
                }
                eprintln!("mesh explain: the config is invalid");
                return Ok(ExitCode::FAILURE);
            }
        };
        let request = RequestInfo {
            method: &self.method,
            authority: authority.as_str(),
            path_and_query: path,
            port,
            headers: &headers,
        };
        let request_json = json!({
            "method": self.method, "authority": authority.as_str(), "path": path, "port": port, "headers": headers,
        });
        let caller = caller(&self.namespace, &self.source_labels);
        match routing::select(&snapshot, &request) {
            Ok(selected) if self.json => {
                let out = explanation(&snapshot, &selected, request_json);
                println!("{}", serde_json::to_string_pretty(&out)?);
                Ok(ExitCode::SUCCESS)
            }
            Ok(selected) => {
                println!("{} {} from {caller}", self.method, self.url);
                print!("{}", summary(&snapshot, &selected));
                Ok(ExitCode::SUCCESS)
            }
            Err(no_route) if self.json => {
                let out = json!({ "request": request_json, "error": no_route.to_string(), "response_flags": "NR" });
                println!("{}", serde_json::to_string_pretty(&out)?);
                eprintln!("mesh explain: no route: {no_route}");
                Ok(ExitCode::FAILURE)
            }
            Err(no_route) => {
                println!("{} {} from {caller}", self.method, self.url);
                println!("  no route: {no_route} (404, response flag NR)");
                Ok(ExitCode::FAILURE)
            }
        }
    }
}

fn explanation(snapshot: &Snapshot, selected: &routing::Selected<'_>, request: Value) -> Value {
    let route = selected.route;
    let action = match &route.action {
        RouteAction::Forward(destinations) => {
            let total: u64 = destinations.iter().map(|d| u64::from(d.weight)).sum();
            let destinations: Vec<Value> = destinations
                .iter()
                .map(|d| {
                    json!({
                        "cluster": d.cluster,
                        "weight": d.weight,
                        "share": if total == 0 { 0.0 } else { f64::from(d.weight) / total as f64 },
                        "request_headers": d.request_headers,
                        "response_headers": d.response_headers,
                        "settings": snapshot.cluster(&d.cluster),
                    })
                })
                .collect();
            json!({ "forward": destinations })
        }
        other => serde_json::to_value(other).unwrap_or(Value::Null),
    };
    json!({
        "request": request,
        "route_config": selected.route_config.name,
        "virtual_host": selected.virtual_host.name,
        "route": { "index": selected.index, "origin": route.origin, "matches": route.matches },
        "action": action,
        "timeout": route.timeout.map(mesh_core::model::format_duration),
        "retries": route.retry,
        "fault": route.fault,
        "mirrors": route.mirrors,
        "rewrite": route.rewrite,
        "request_headers": route.request_headers,
        "response_headers": route.response_headers,
        "snapshot_version": snapshot.version,
    })
}

/// `key=value,key=value` as labels; empty for no labels.
fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
            _ => Err(format!("label {pair:?} is not `key=value`")),
        })
        .collect()
}

fn caller(namespace: &str, labels: &BTreeMap<String, String>) -> String {
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if labels.is_empty() {
        format!("namespace {namespace}")
    } else {
        format!("namespace {namespace} ({})", labels.join(","))
    }
}

/// A few lines: which rule matched, where the request goes, and the policies on the way.
fn summary(snapshot: &Snapshot, selected: &routing::Selected<'_>) -> String {
    use std::fmt::Write as _;
    let route = selected.route;
    let mut out = String::new();
    let origin = match &route.origin {
        RouteOrigin::VirtualService {
            name,
            index,
            route_name,
        } => match route_name {
            Some(n) => format!("VirtualService {name} http[{index}] ({n:?})"),
            None => format!("VirtualService {name} http[{index}]"),
        },
        RouteOrigin::Default => "default route (no VirtualService)".to_owned(),
        RouteOrigin::Xds { name } => format!("xDS route {name}"),
    };
    let _ = writeln!(
        out,
        "  matched: {origin}, virtual host {}",
        selected.virtual_host.name
    );
    match &route.action {
        RouteAction::Forward(destinations) => {
            let total: u64 = destinations.iter().map(|d| u64::from(d.weight)).sum();
            for d in destinations {
                let share = if total == 0 {
                    0.0
                } else {
                    100.0 * f64::from(d.weight) / total as f64
                };
                let detail = match snapshot.cluster(&d.cluster) {
                    Some(c) => format!(
                        "{} endpoint(s), {:?}, tls {:?}",
                        c.endpoints.len(),
                        c.lb,
                        c.tls.mode
                    ),
                    None => "no such cluster: 503 UH".to_owned(),
                };
                let _ = writeln!(out, "  -> {share:5.1}% {} ({detail})", d.cluster);
            }
        }
        other => {
            let action = serde_json::to_string(other).unwrap_or_default();
            let _ = writeln!(out, "  answered by mesh: {action}");
        }
    }
    let timeout = route
        .timeout
        .map_or_else(|| "none".to_owned(), mesh_core::model::format_duration);
    let retries = route.retry.as_ref().map_or_else(
        || "none".to_owned(),
        |r| format!("{} attempt(s)", r.attempts),
    );
    let _ = writeln!(out, "  timeout: {timeout}, retries: {retries}");
    if let Some(fault) = &route.fault {
        let _ = writeln!(
            out,
            "  fault: delay {}, abort {}",
            if fault.delay.is_some() { "yes" } else { "no" },
            if fault.abort.is_some() { "yes" } else { "no" }
        );
    }
    for m in &route.mirrors {
        let _ = writeln!(
            out,
            "  mirror: {}",
            serde_json::to_string(m).unwrap_or_default()
        );
    }
    out
}
