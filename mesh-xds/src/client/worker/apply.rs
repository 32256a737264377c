//! Applying: a complete set (every listener's route configuration and every EDS cluster's
//! assignment present, or known not to exist) becomes a snapshot swapped into the mesh; the
//! status shows each resource's state.

use super::*;

impl Worker {
    pub(super) fn complete(&self) -> bool {
        let t = |k| self.types.get(&k);
        let (Some(lds), Some(rds), Some(cds), Some(eds)) = (
            t(ResourceKind::Listener),
            t(ResourceKind::RouteConfiguration),
            t(ResourceKind::Cluster),
            t(ResourceKind::Endpoints),
        ) else {
            return false;
        };
        let d = &self.decoded;
        let lds_done = (!lds.wildcard || lds.received)
            && lds
                .names
                .iter()
                .all(|n| d.listeners.contains_key(n) || lds.settled(n));
        lds_done
            && cds.received
            && rds
                .names
                .iter()
                .all(|n| d.route_configurations.contains_key(n) || rds.settled(n))
            && eds
                .names
                .iter()
                .all(|n| d.endpoints.contains_key(n) || eds.settled(n))
    }

    /// Builds and applies the snapshot when the set is complete and differs from the last.
    pub(super) fn try_apply(&mut self) {
        if !self.complete() {
            return;
        }
        let versions: Vec<&str> = KINDS
            .iter()
            .filter_map(|k| self.types.get(k))
            .map(|t| t.version.as_str())
            .collect();
        let base = versions.join("/");
        let source = SnapshotSource::Xds {
            server: self.target_name(self.current),
        };
        let mut snapshot = assemble(&self.decoded, base.clone(), source);
        for name in &self.config.server_listeners {
            if !self.decoded.listeners.contains_key(name) {
                not_serving(&mut snapshot.inbound, name);
            }
        }
        if let Some(prev) = &self.applied {
            if prev.routes == snapshot.routes
                && prev.clusters == snapshot.clusters
                && prev.inbound == snapshot.inbound
            {
                return;
            }
            if prev.version == snapshot.version || prev.version.starts_with(&format!("{base}+")) {
                self.generation += 1;
                snapshot.version = format!("{base}+{}", self.generation);
            }
        }
        if let Some(prev) = &self.applied
            && !prev.clusters.is_empty()
            && prev
                .clusters
                .keys()
                .all(|c| !snapshot.clusters.contains_key(c))
        {
            tracing::warn!(
                server = %self.target_name(self.current),
                removed = prev.clusters.len(),
                version = %snapshot.version,
                "xDS push removes every cluster this workload used: requests to them will fail \
                 (a control plane restarted empty? set the server feature ignore_resource_deletion to keep them)"
            );
            metrics::counter!("mesh_xds_client_all_clusters_removed_total").increment(1);
        }
        for w in &snapshot.warnings {
            let text = w.to_string();
            if self.logged_warnings.insert(text.clone()) {
                tracing::warn!(warning = %text, "xDS config uses something mesh does not implement");
                metrics::counter!("mesh_xds_unsupported_fields_total").increment(1);
            }
        }
        let version = snapshot.version.clone();
        self.mesh.apply(snapshot.clone());
        self.applied = Some(snapshot);
        self.status.send_modify(|s| {
            s.ready = true;
            s.applied_version = Some(version);
        });
    }

    pub(super) fn publish_status(&self) {
        let resources: Vec<ResourceStatus> = self
            .types
            .iter()
            .flat_map(|(kind, t)| {
                t.states
                    .iter()
                    .map(|(name, (version, state))| ResourceStatus {
                        kind: kind.as_str(),
                        name: name.clone(),
                        version: version.clone(),
                        state: state.clone(),
                    })
            })
            .collect();
        self.status.send_if_modified(|s| {
            let changed = s.resources != resources;
            s.resources = resources;
            changed
        });
    }
}
