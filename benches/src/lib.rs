//! Shared helpers for the benchmarks: generated Istio configs of a given size.
#![forbid(unsafe_code)]

use std::fmt::Write;

/// Istio YAML for `services` services in namespace `default`, each a ServiceEntry on port 8080
/// with `endpoints` endpoints labelled across `subsets` versions, a DestinationRule declaring the
/// subsets, and a VirtualService splitting traffic over them with a header route in front.
pub fn fleet_yaml(services: usize, endpoints: usize, subsets: usize) -> String {
    let mut out = String::with_capacity(services * (600 + endpoints * 120));
    for s in 0..services {
        let host = format!("svc-{s}.default.svc.cluster.local");
        let _ = write!(
            out,
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: svc-{s}\n  namespace: default\nspec:\n  hosts: [\"{host}\"]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports:\n  - number: 8080\n    name: http\n    protocol: HTTP\n  endpoints:\n"
        );
        for e in 0..endpoints {
            let _ = write!(
                out,
                "  - address: 10.{}.{}.{}\n    labels: {{app: svc-{s}, version: v{}}}\n    serviceAccount: svc-{s}\n",
                (s / 250) % 250,
                s % 250,
                e + 1,
                e % subsets.max(1) + 1
            );
        }
        out.push_str("---\n");
        let _ = write!(
            out,
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: svc-{s}\n  namespace: default\nspec:\n  host: {host}\n  trafficPolicy:\n    loadBalancer:\n      simple: LEAST_REQUEST\n  subsets:\n"
        );
        for v in 1..=subsets {
            let _ = write!(out, "  - name: v{v}\n    labels: {{version: v{v}}}\n");
        }
        out.push_str("---\n");
        let _ = write!(
            out,
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: svc-{s}\n  namespace: default\nspec:\n  hosts: [\"{host}\"]\n  http:\n  - match:\n    - headers:\n        end-user:\n          exact: jason\n    route:\n    - destination: {{host: {host}, subset: v1}}\n  - route:\n"
        );
        let weights = split_weights(subsets.max(1));
        for (v, w) in weights.iter().enumerate() {
            let _ = write!(
                out,
                "    - destination: {{host: {host}, subset: v{}}}\n      weight: {w}\n",
                v + 1
            );
        }
        out.push_str("---\n");
    }
    out
}

/// `n` weights adding up to 100.
fn split_weights(n: usize) -> Vec<usize> {
    let base = 100 / n;
    let mut w = vec![base; n];
    w[0] += 100 - base * n;
    w
}

#[cfg(test)]
mod tests {
    #[test]
    fn weights_total_100() {
        for n in 1..10 {
            assert_eq!(super::split_weights(n).iter().sum::<usize>(), 100);
        }
    }
}
