//! Istio resources from YAML files, translated into a validated [`Snapshot`].
//!
//! mesh reads the Istio resources that shape a workload's traffic and security —
//! `ServiceEntry`, `WorkloadEntry`, `DestinationRule`, `VirtualService`, `Sidecar` (its
//! `ingress` listeners; `networking.istio.io` v1, v1beta1, v1alpha3) and `PeerAuthentication`, `AuthorizationPolicy`
//! (`security.istio.io` v1, v1beta1) — and builds the [`Snapshot`] a workload uses, from that
//! workload's point of view ([`BuildContext`]), as istiod would build its proxy's config.
//!
//! # Reading
//! Files are split into documents on `---` lines before parsing (see `documents.rs` for the
//! exact rule: document 0 is the text before the first separator, empty documents count), so a
//! malformed document never hides the others. `kind: List` documents (kubectl output) are read
//! item by item; their field paths start with `items[i].`. Kubernetes `Service`,
//! `EndpointSlice`, `Endpoints` and `Pod` documents declare services as istiod's Kubernetes
//! registry does (see the `kube` module). Other kinds (Deployment, Gateway, …) are
//! skipped with a warning.
//!
//! # Validation
//! Everything is checked before anything is built, and every problem of every document is
//! reported: fields Istio does not have are errors (a typo never passes); fields Istio has but
//! mesh does not implement are warnings ("not implemented; ignored"); wrong types, unknown enum
//! values, bad durations, regexes, ports, addresses, weights, percentages, dangling subsets and
//! duplicates are errors, as istiod's validation (pkg/config/validation) has them. Each [`Diagnostic`] names the file,
//! document, resource and field:
//!
//! ```text
//! mesh/reviews.yaml: doc 2 VirtualService default/reviews: spec.http[0].route[1].weight: weight -5 < 0
//! ```
//!
//! Diagnostics are ordered by file and document; within a document, in the order found.
//!
//! ```
//! use mesh_core::{BuildContext, istio};
//!
//! let ctx = BuildContext::default(); // workload default/default
//! let yaml = "
//! apiVersion: networking.istio.io/v1
//! kind: ServiceEntry
//! metadata: {name: reviews}
//! spec:
//!   hosts: [reviews]
//!   location: MESH_INTERNAL
//!   resolution: STATIC
//!   ports: [{number: 9080, name: http}]
//!   endpoints: [{address: 10.0.0.1, labels: {version: v1}}]
//! ";
//! let snapshot = istio::load_str("mesh/reviews.yaml", yaml, &ctx)?;
//! let routes = snapshot.route_config(9080).ok_or("no routes for 9080")?;
//! assert!(routes.virtual_host("reviews:9080").is_some());
//!
//! let bad = "
//! apiVersion: networking.istio.io/v1
//! kind: VirtualService
//! metadata: {name: reviews}
//! spec: {hosts: [reviews], http: [{route: [{destination: {host: reviews}, weight: -5}]}]}
//! ";
//! let err = istio::load_str("mesh/bad.yaml", bad, &ctx).unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "config refused with 1 error\n  mesh/bad.yaml: doc 0 VirtualService default/reviews: \
//!      spec.http[0].route[0].weight: weight -5 < 0"
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Semantics
//! As Istio documents them, from the workload's point of view: short hosts resolve in the
//! resource's namespace (`reviews` in `default` is `reviews.default.svc.cluster.local`; names
//! with a dot are taken as given); `sourceLabels` / `sourceNamespace` / `gateways` of a match
//! block are evaluated against the workload (a block that cannot match it is dropped); routes
//! without `retries` get Istio's default retry policy; services without a VirtualService get a
//! default route; subset policies merge over the rule's as Istio's `MergeTrafficPolicy` does.
//! As in istiod: `exportTo` decides which resources the workload sees (defaults in
//! [`MeshSettings`](crate::MeshSettings)); resources are ordered by `creationTimestamp`, then
//! name, so the oldest VirtualService for a host wins; several DestinationRules for one host
//! merge; delegate VirtualServices merge into their roots; route weights are relative.
//! Two deliberate differences, because mesh has no Kubernetes Services to declare hosts:
//!
//! - ServiceEntry hosts are resolved like VirtualService hosts (Istio takes them literally), so
//!   `hosts: [reviews]` declares `reviews.<namespace>.svc.<domain>` and matches the
//!   VirtualServices and DestinationRules that say `reviews`.
//! - A DestinationRule annotated `mesh.dev/load-balancer: PEAK_EWMA` balances with
//!   [`LbPolicy::PeakEwma`](crate::model::LbPolicy::PeakEwma) wherever it would use
//!   LEAST_REQUEST: mesh's latency-aware extension of least-request.
//!
//! # Snapshots
//! An accepted load carries its warnings in [`Snapshot::warnings`]; its version is a hex
//! SHA-256 prefix of the inputs (file names and contents), so the same input gives the same
//! version. [`load_str`] reports [`SnapshotSource::Files`] with its label as the one path.
//!
//! [`Diagnostic`]: crate::config::Diagnostic

mod analyze;
mod decode;
mod diag;
mod documents;
mod files;
mod kube;
mod locate;
mod names;
mod resources;
mod translate;

use std::path::{Path, PathBuf};

pub use locate::locate;

use diag::Diagnostics;
use documents::RawResource;

use crate::BuildContext;
use crate::config::ConfigError;
use crate::model::{Snapshot, SnapshotSource};

/// Reads files and directories (directories recursively: `*.yaml` and `*.yml`; files as given,
/// each possibly with several documents), validates every resource, and builds the snapshot
/// for `ctx`.
///
/// On error, [`ConfigError::diagnostics`] holds every error and warning found in all files.
pub fn load_paths<P: AsRef<Path>>(
    paths: &[P],
    ctx: &BuildContext,
) -> Result<Snapshot, ConfigError> {
    let files = collect_files(paths)?;
    let mut inputs = Vec::with_capacity(files.len());
    for file in files {
        let content = std::fs::read_to_string(&file).map_err(|e| ConfigError {
            diagnostics: vec![crate::config::Diagnostic {
                file: Some(file.clone()),
                ..crate::config::Diagnostic::error("", format!("cannot read: {e}"))
            }],
        })?;
        inputs.push((file, content));
    }
    let source = SnapshotSource::Files {
        paths: paths.iter().map(|p| p.as_ref().to_owned()).collect(),
    };
    load(inputs, source, ctx)
}

/// Like [`load_paths`] for one YAML text; `file_label` names it in diagnostics and is the one
/// path of the snapshot's [`SnapshotSource::Files`].
pub fn load_str(file_label: &str, yaml: &str, ctx: &BuildContext) -> Result<Snapshot, ConfigError> {
    let source = SnapshotSource::Files {
        paths: vec![PathBuf::from(file_label)],
    };
    load(
        vec![(PathBuf::from(file_label), yaml.to_owned())],
        source,
        ctx,
    )
}

/// The files [`load_paths`] would read, sorted: what a watcher should watch.
pub fn collect_files<P: AsRef<Path>>(paths: &[P]) -> Result<Vec<PathBuf>, ConfigError> {
    files::collect(paths)
}

fn version(inputs: &[(PathBuf, String)]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for (file, content) in inputs {
        let name = file.to_string_lossy();
        for part in [name.as_bytes(), content.as_bytes()] {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part);
        }
    }
    ctx.finish()
        .as_ref()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn load(
    inputs: Vec<(PathBuf, String)>,
    source: SnapshotSource,
    ctx: &BuildContext,
) -> Result<Snapshot, ConfigError> {
    let mut diags = Diagnostics::default();
    let mut raw: Vec<RawResource> = Vec::new();
    documents::read_documents(
        &inputs,
        &ctx.settings.default_namespace,
        &mut diags,
        &mut raw,
    );
    analyze::analyze(&raw, &ctx.settings, &mut diags);
    let built = translate::build(raw, ctx, &mut diags);
    if diags.has_errors() {
        return Err(ConfigError {
            diagnostics: diags.into_vec(),
        });
    }
    Ok(Snapshot {
        version: version(&inputs),
        source,
        routes: built.routes,
        clusters: built.clusters,
        inbound: built.inbound,
        warnings: diags.into_vec(),
    })
}
