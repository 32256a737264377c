//! Istio YAML files through the whole loader, as `mesh check` reads them, then what a workload
//! does with an accepted snapshot: a balancer for every cluster, and the xDS resources istiod
//! would serve for it, decoded back.
//!
//! Inputs are whole files. Most are built from the seeds' parsed documents: a few documents
//! from one or more seed files, their trees mutated ([`crate::tree`]), then written back as YAML
//! or JSON (both are YAML). The rest are seed or generated texts mutated byte by byte, with YAML
//! syntax (anchors, tags, flow collections, block scalars) among the tokens inserted.

use mesh_core::balance::{Balancer, ClientLocality, ClusterState};
use mesh_core::model::Snapshot;
use mesh_core::{BuildContext, Workload, istio};
use mesh_xds::translate::{
    NodeKind, decode_cluster, decode_listener, decode_load_assignment, decode_route_configuration,
    to_resources,
};
use rand::Rng;
use rand::rngs::StdRng;
use serde_json::Value;

use crate::corpus;
use crate::driver::Target;
use crate::mutate::mutate_bytes;
use crate::tree::{Vocabulary, mutate_value};

/// YAML syntax worth inserting anywhere.
const YAML_TOKENS: [&str; 22] = [
    "&a ",
    "*a",
    "!!str ",
    "!!int ",
    "!!binary ",
    "<<: *a\n",
    "{",
    "}",
    "[",
    "]",
    "---\n",
    "...\n",
    ": ",
    "- ",
    "|\n  ",
    ">-\n  ",
    "? ",
    "\t",
    "#",
    "'",
    "\"",
    "%YAML 1.2\n",
];

/// The `yaml` target.
pub struct YamlTarget {
    ctx: BuildContext,
    /// Seed files as text.
    texts: Vec<String>,
    /// Seed files as parsed documents (files with none left out).
    files: Vec<Vec<Value>>,
    vocab: Vocabulary,
    dict: Vec<Vec<u8>>,
}

impl Default for YamlTarget {
    fn default() -> Self {
        Self::new()
    }
}

impl YamlTarget {
    /// Reads the seeds.
    pub fn new() -> Self {
        let seeds = corpus::yaml_seeds();
        let texts: Vec<String> = seeds.into_iter().map(|(_, t)| t).collect();
        let files: Vec<Vec<Value>> = texts
            .iter()
            .map(|t| corpus::documents(t))
            .filter(|d| !d.is_empty())
            .collect();
        let vocab = Vocabulary::from_docs(files.iter().flatten());
        let mut dict: Vec<Vec<u8>> = YAML_TOKENS.iter().map(|t| t.as_bytes().to_vec()).collect();
        for doc in files.iter().flatten() {
            if let Some(kind) = doc.get("kind").and_then(Value::as_str) {
                dict.push(format!("kind: {kind}\n").into_bytes());
            }
        }
        dict.sort();
        dict.dedup();
        Self {
            ctx: BuildContext {
                workload: Workload::new("default", "reviews")
                    .labels([("app", "reviews"), ("version", "v1")]),
                ..Default::default()
            },
            texts,
            files,
            vocab,
            dict,
        }
    }

    /// Seed files read (texts, files with documents).
    pub fn seed_counts(&self) -> (usize, usize) {
        (self.texts.len(), self.files.len())
    }

    fn structured(&self, rng: &mut StdRng) -> Vec<u8> {
        let mut docs: Vec<Value> = Vec::new();
        for _ in 0..rng.random_range(1..=3) {
            if let Some(file) = self.files.get(rng.random_range(0..self.files.len().max(1))) {
                docs.extend(file.iter().cloned());
            }
        }
        if docs.is_empty() {
            return Vec::new();
        }
        // Document-level moves: duplicate (same name twice), drop, reorder.
        match rng.random_range(0..6) {
            0 => {
                let i = rng.random_range(0..docs.len());
                docs.insert(i, docs[i].clone());
            }
            1 if docs.len() > 1 => {
                docs.remove(rng.random_range(0..docs.len()));
            }
            2 => {
                let (i, j) = (
                    rng.random_range(0..docs.len()),
                    rng.random_range(0..docs.len()),
                );
                docs.swap(i, j);
            }
            _ => {}
        }
        for _ in 0..rng.random_range(1..=3) {
            let i = rng.random_range(0..docs.len());
            mutate_value(rng, &mut docs[i], &self.vocab);
        }
        let mut text = String::new();
        for doc in &docs {
            let written = if rng.random_range(0..3) == 0 {
                serde_json::to_string(doc).ok()
            } else {
                serde_saphyr::to_string(doc).ok()
            };
            text.push_str(&written.unwrap_or_default());
            text.push_str("\n---\n");
        }
        text.into_bytes()
    }
}

impl Target for YamlTarget {
    fn name(&self) -> &'static str {
        "yaml"
    }

    fn generate(&mut self, rng: &mut StdRng) -> Vec<u8> {
        let roll = rng.random_range(0..10);
        let mut input = if roll < 3 && !self.texts.is_empty() {
            self.texts[rng.random_range(0..self.texts.len())]
                .clone()
                .into_bytes()
        } else {
            self.structured(rng)
        };
        if roll < 4 {
            let other = self
                .texts
                .get(rng.random_range(0..self.texts.len().max(1)))
                .map(String::as_bytes);
            mutate_bytes(rng, &mut input, &self.dict, other);
        }
        input
    }

    fn execute(&mut self, input: &[u8]) -> Result<&'static str, String> {
        let text = String::from_utf8_lossy(input);
        match istio::load_str("fuzz.yaml", &text, &self.ctx) {
            Ok(snapshot) => use_snapshot(&snapshot),
            Err(err) => {
                // Every refusal says why.
                if err.diagnostics.iter().any(|d| d.is_error()) {
                    Ok("refused")
                } else {
                    Err(format!("refused without an error diagnostic: {err}"))
                }
            }
        }
    }
}

/// What a workload does with an accepted snapshot. The round trip through xDS is counted, not
/// required: this target looks for panics.
fn use_snapshot(snapshot: &Snapshot) -> Result<&'static str, String> {
    let now = tokio::time::Instant::now();
    for cluster in snapshot.clusters.values() {
        let state = ClusterState::new(cluster.name.clone(), now);
        let _ = Balancer::new(cluster, &state, &ClientLocality::default(), now);
    }
    let mut refused = false;
    for node in [NodeKind::Envoy, NodeKind::ProxylessGrpc] {
        let r = to_resources(snapshot, node);
        refused |= r.listeners.iter().any(|l| decode_listener(l).is_err());
        refused |= r
            .route_configurations
            .iter()
            .any(|rc| decode_route_configuration(rc).is_err());
        refused |= r.clusters.iter().any(|c| decode_cluster(c).is_err());
        refused |= r
            .load_assignments
            .iter()
            .any(|e| decode_load_assignment(e).is_err());
    }
    Ok(if refused {
        "accepted (xDS round trip refused)"
    } else {
        "accepted"
    })
}
