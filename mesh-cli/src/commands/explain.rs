//! `mesh explain`: where would this request go, and under which policies? Answers as JSON
//! without any network, from the same routing code the client runs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use mesh_core::model::{RouteAction, Snapshot};
use mesh_core::routing::{self, RequestInfo};
use mesh_core::{BuildContext, Workload, istio};
use serde_json::{Value, json};

use super::CliError as CommandError;

/// Print, as JSON, the route a request takes and every policy that applies to it.
#[derive(Debug, Args)]
pub(crate) struct Explain {
    /// Istio YAML files or directories.
    #[arg(long = "config", required = true)]
    config: Vec<PathBuf>,
    /// Namespace of the calling workload (short hosts resolve in it).
    #[arg(long, default_value = "default")]
    namespace: String,
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
            workload: Workload::new(self.namespace, "default"),
            ..Default::default()
        };
        let snapshot = match istio::load_paths(&self.config, &ctx) {
            Ok(s) => s,
            Err(err) => {
                for d in err.errors() {
                    eprintln!("error: {d}");
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
        match routing::select(&snapshot, &request) {
            Ok(selected) => {
                let out = explanation(&snapshot, &selected, request_json);
                println!("{}", serde_json::to_string_pretty(&out)?);
                Ok(ExitCode::SUCCESS)
            }
            Err(no_route) => {
                let out = json!({ "request": request_json, "error": no_route.to_string(), "response_flags": "NR" });
                println!("{}", serde_json::to_string_pretty(&out)?);
                eprintln!("mesh explain: no route: {no_route}");
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
