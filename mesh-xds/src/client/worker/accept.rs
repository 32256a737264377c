//! Reading one response: decode each resource on its own, ACK or NACK, state of the world
//! (what a response leaves out is gone), and following the listeners' and clusters' names into
//! the RDS and EDS subscriptions.

use super::*;

impl Worker {
    /// Handles one response; returns the requests to send (the ACK or NACK first).
    pub(super) fn handle(&mut self, response: DiscoveryResponse) -> Vec<DiscoveryRequest> {
        let Some(kind) = KINDS.iter().copied().find(|k| url(*k) == response.type_url) else {
            tracing::warn!(type_url = %response.type_url, "xDS response of a type not asked for; ignored");
            return Vec::new();
        };
        let errors = self.accept(kind, &response);
        let mut requests = Vec::new();
        let short = kind.as_str();
        let Some(t) = self.types.get_mut(&kind) else {
            return requests;
        };
        t.nonce = response.nonce.clone();
        t.received = true;
        let mut ack = t.request(kind, self.current);
        if errors.is_empty() {
            t.version = response.version_info.clone();
            t.version_server = Some(self.current);
            ack.version_info = t.version.clone();
            metrics::counter!("mesh_xds_client_responses_total", "type" => short, "result" => "ack").increment(1);
        } else {
            let message = errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            tracing::warn!(r#type = short, version = %response.version_info, error = %message, "xDS NACK; valid resources of the response are used, the rest keeps its last good version");
            metrics::counter!("mesh_xds_client_responses_total", "type" => short, "result" => "nack").increment(1);
            ack.error_detail = Some(RpcStatus {
                code: tonic::Code::InvalidArgument as i32,
                message: message.clone(),
                details: Vec::new(),
            });
            self.status.send_modify(|s| s.last_nack = Some(message));
        }
        requests.push(ack);
        requests.extend(self.follow_dependencies());
        // Resource states first, so whoever sees `ready` sees the states that made it so.
        self.publish_status();
        self.try_apply();
        if !errors.is_empty() {
            // After applying the valid part, so the refusal stays visible in the mesh status.
            self.mesh.reject(ConfigError {
                diagnostics: errors.iter().map(XdsError::to_diagnostic).collect(),
            });
        }
        self.publish_status();
        requests
    }

    /// Decodes and stores the resources of a response; returns the errors.
    pub(super) fn accept(
        &mut self,
        kind: ResourceKind,
        response: &DiscoveryResponse,
    ) -> Vec<XdsError> {
        let mut errors = Vec::new();
        let mut seen = BTreeSet::new();
        let version = response.version_info.clone();
        let mut results: Vec<(String, Result<(), XdsError>)> = Vec::new();
        for (i, any) in response.resources.iter().enumerate() {
            let undecodable = |e: String| XdsError {
                kind,
                name: format!("#{i}"),
                field: "resource".into(),
                message: e,
            };
            if any.type_url != response.type_url {
                errors.push(undecodable(format!(
                    "type {} in a {} response",
                    any.type_url, response.type_url
                )));
                continue;
            }
            let outcome = match kind {
                ResourceKind::Listener => decode::<Listener>(any).map_err(undecodable).map(|l| {
                    let name = l.name.clone();
                    (
                        name,
                        decode_listener(&l).map(|d| {
                            self.decoded.listeners.insert(d.name.clone(), d);
                        }),
                    )
                }),
                ResourceKind::RouteConfiguration => decode::<XdsRouteConfiguration>(any)
                    .map_err(undecodable)
                    .map(|r| {
                        let name = r.name.clone();
                        (
                            name,
                            decode_route_configuration(&r).map(|d| {
                                self.decoded.route_configurations.insert(d.name.clone(), d);
                            }),
                        )
                    }),
                ResourceKind::Cluster => decode::<XdsCluster>(any).map_err(undecodable).map(|c| {
                    let name = c.name.clone();
                    (
                        name,
                        decode_cluster(&c).map(|d| {
                            self.decoded.clusters.insert(d.cluster.name.to_string(), d);
                        }),
                    )
                }),
                ResourceKind::Endpoints => decode::<ClusterLoadAssignment>(any)
                    .map_err(undecodable)
                    .map(|e| {
                        let name = e.cluster_name.clone();
                        (
                            name,
                            decode_load_assignment(&e).map(|d| {
                                self.decoded.endpoints.insert(d.name.clone(), d);
                            }),
                        )
                    }),
            };
            match outcome {
                Ok(r) => results.push(r),
                Err(e) => errors.push(e),
            }
        }
        let ignore_deletion = self
            .config
            .ignore_resource_deletion
            .get(self.current)
            .copied()
            .unwrap_or(false);
        let server = self.target_name(self.current);
        let Some(t) = self.types.get_mut(&kind) else {
            return errors;
        };
        for (name, result) in results {
            if t.deletion_ignored.remove(&name) {
                tracing::info!(r#type = kind.as_str(), resource = %name, %server, "xDS resource whose deletion was ignored is sent again");
            }
            seen.insert(name.clone());
            t.pending.remove(&name);
            t.does_not_exist.remove(&name);
            match result {
                Ok(()) => {
                    t.states
                        .insert(name, (version.clone(), ResourceState::Acked));
                }
                Err(e) => {
                    let kept = t
                        .states
                        .get(&name)
                        .map(|(v, _)| v.clone())
                        .unwrap_or_default();
                    t.states.insert(
                        name,
                        (
                            kept,
                            ResourceState::Nacked {
                                error: e.to_string(),
                            },
                        ),
                    );
                    errors.push(e);
                }
            }
        }
        // State of the world: a listener or cluster the response leaves out is gone (unless the
        // response could not be read whole, when the cached copies are kept).
        if matches!(kind, ResourceKind::Listener | ResourceKind::Cluster)
            && errors.iter().all(|e| !e.name.starts_with('#'))
        {
            let gone: Vec<String> = t
                .states
                .keys()
                .filter(|n| {
                    !seen.contains(*n)
                        && !t.pending.contains_key(*n)
                        && !t.does_not_exist.contains(*n)
                })
                .cloned()
                .collect();
            for name in gone {
                if ignore_deletion {
                    // gRFC A53: the cached resource stays in use; said once per deletion.
                    if t.deletion_ignored.insert(name.clone()) {
                        tracing::warn!(r#type = kind.as_str(), resource = %name, %server,
                            "xDS server deleted a resource in use; deletion ignored (ignore_resource_deletion), the cached copy keeps serving");
                        metrics::counter!("mesh_xds_client_ignored_deletions_total", "type" => kind.as_str()).increment(1);
                    }
                    continue;
                }
                t.states.remove(&name);
                match kind {
                    ResourceKind::Listener => {
                        self.decoded.listeners.remove(&name);
                        if !t.wildcard || t.names.contains(&name) {
                            t.does_not_exist.insert(name.clone());
                            t.states
                                .insert(name, (String::new(), ResourceState::DoesNotExist));
                        }
                    }
                    _ => {
                        self.decoded.clusters.remove(&name);
                    }
                }
            }
        }
        errors
    }

    /// Updates the RDS and EDS subscriptions to what the listeners and clusters name.
    pub(super) fn follow_dependencies(&mut self) -> Vec<DiscoveryRequest> {
        let mut out = Vec::new();
        let now = Instant::now();
        let server = self.current;
        for (kind, wanted) in [
            (
                ResourceKind::RouteConfiguration,
                self.decoded.wanted_route_configurations(),
            ),
            (ResourceKind::Endpoints, self.decoded.wanted_endpoints()),
        ] {
            let decoded = &mut self.decoded;
            let Some(t) = self.types.get_mut(&kind) else {
                continue;
            };
            if t.names == wanted {
                continue;
            }
            t.names = wanted;
            t.pending.retain(|n, _| t.names.contains(n));
            t.does_not_exist.retain(|n| t.names.contains(n));
            t.states.retain(|n, _| t.names.contains(n));
            match kind {
                ResourceKind::RouteConfiguration => decoded
                    .route_configurations
                    .retain(|n, _| t.names.contains(n)),
                _ => decoded.endpoints.retain(|n, _| t.names.contains(n)),
            }
            t.arm(now, |n| have(decoded, kind, n));
            out.push(t.request(kind, server));
        }
        out
    }
}

fn decode<M: Message + Default>(any: &Any) -> Result<M, String> {
    M::decode(any.value.as_slice()).map_err(|e| format!("cannot decode: {e}"))
}
