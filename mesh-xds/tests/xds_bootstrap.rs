//! The bootstrap Istio's grpc-agent writes, read unchanged; and a client started from a
//! bootstrap over a Unix socket.

#![allow(clippy::unwrap_used)] // a panic in a test is a failed test

use std::path::Path;
use std::time::Duration;

use mesh_core::identity::IdentityFiles;
use mesh_core::{Mesh, MeshSettings};
use mesh_xds::bootstrap::{Bootstrap, BootstrapError, XdsServerConfig, XdsTarget};
use mesh_xds::client::{XdsClient, XdsClientConfig};
use mesh_xds::server::XdsServer;

fn fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/grpc-bootstrap.json")
}

#[test]
fn istio_grpc_agent_bootstrap() {
    let b = Bootstrap::load(&fixture()).unwrap();
    assert_eq!(
        b.servers,
        [XdsServerConfig {
            target: XdsTarget::Unix("/etc/istio/proxy/XDS".into()),
            tls: None,
            server_features: vec!["xds_v3".into()],
        }]
    );
    assert_eq!(
        b.primary(),
        Some(&XdsTarget::Unix("/etc/istio/proxy/XDS".into()))
    );
    let id = b.istio_node_id().unwrap();
    assert_eq!(
        (
            id.node_type.as_str(),
            id.ip.as_str(),
            id.pod.as_str(),
            id.namespace.as_str()
        ),
        (
            "sidecar",
            "10.244.0.27",
            "echo-v1-6d8f7c9b5-x2x7q",
            "echo-grpc"
        )
    );
    let w = b.workload();
    assert_eq!(
        (
            w.namespace.as_str(),
            w.name.as_str(),
            w.service_account.as_str()
        ),
        ("echo-grpc", "echo-v1", "default")
    );
    assert_eq!(w.labels["version"], "v1");
    assert_eq!(w.locality.zone, "us-central1-a");
    assert_eq!(
        b.identity_files(),
        Some(IdentityFiles {
            cert_chain: "/var/lib/istio/data/cert-chain.pem".into(),
            key: "/var/lib/istio/data/key.pem".into(),
            roots: "/var/lib/istio/data/root-cert.pem".into(),
        })
    );
    assert_eq!(
        b.certificate_providers["default"].refresh_interval,
        Duration::from_secs(900)
    );
    assert_eq!(
        b.server_listener_name("10.244.0.27:17070".parse().unwrap())
            .as_deref(),
        Some("xds.istio.io/grpc/lds/inbound/10.244.0.27:17070")
    );
    assert!(b.ignored.is_empty(), "{:?}", b.ignored);
}

#[test]
fn bad_bootstraps_name_the_field() {
    let err = Bootstrap::parse(
        Path::new("b.json"),
        r#"{"xds_servers": [{"server_uri": "istiod"}]}"#,
    )
    .unwrap_err();
    assert!(
        matches!(&err, BootstrapError::Invalid { message, .. } if message.starts_with("xds_servers[0].server_uri")),
        "{err}"
    );
    let err = Bootstrap::parse(Path::new("b.json"), r#"{"xds_servers": [{"server_uri": "x:1", "channel_creds": [{"type": "google_default"}]}]}"#).unwrap_err();
    assert!(err.to_string().contains("channel_creds"), "{err}");
    let err = Bootstrap::parse(Path::new("b.json"), r#"{"xds_servers": []}"#).unwrap_err();
    assert!(err.to_string().contains("xds_servers"), "{err}");
    // A fallback is validated as the primary is, and named by its index.
    let err = Bootstrap::parse(
        Path::new("b.json"),
        r#"{"xds_servers": [{"server_uri": "x:1"}, {"server_uri": "istiod"}]}"#,
    )
    .unwrap_err();
    assert!(
        matches!(&err, BootstrapError::Invalid { message, .. } if message.starts_with("xds_servers[1].server_uri")),
        "{err}"
    );
    let err = Bootstrap::parse(
        Path::new("b.json"),
        r#"{"xds_servers": [{"server_uri": "x:1"}, {"server_uri": "y:2", "channel_creds": [{"type": "tls"}]}]}"#,
    )
    .unwrap_err();
    assert!(
        matches!(&err, BootstrapError::Invalid { message, .. } if message.starts_with("xds_servers[1].channel_creds")),
        "{err}"
    );
}

#[test]
fn every_server_is_kept_the_primary_first() {
    let b = Bootstrap::parse(
        Path::new("b.json"),
        r#"{"xds_servers": [
            {"server_uri": "dns:///istiod.istio-system.svc:15010", "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]},
            {"server_uri": "unix:///etc/istio/proxy/XDS"},
            {"server_uri": "10.0.0.9:15010", "server_features": ["ignore_resource_deletion"]}
        ]}"#,
    )
    .unwrap();
    assert_eq!(
        b.servers,
        [
            XdsServerConfig {
                target: XdsTarget::Tcp("istiod.istio-system.svc:15010".into()),
                tls: None,
                server_features: vec!["xds_v3".into()],
            },
            XdsServerConfig {
                target: XdsTarget::Unix("/etc/istio/proxy/XDS".into()),
                tls: None,
                server_features: vec![],
            },
            XdsServerConfig {
                target: XdsTarget::Tcp("10.0.0.9:15010".into()),
                tls: None,
                server_features: vec!["ignore_resource_deletion".into()],
            },
        ]
    );
    assert!(b.ignored.is_empty(), "fallbacks are used: {:?}", b.ignored);
    let config = XdsClientConfig::from_bootstrap(&b);
    assert_eq!(
        config.servers,
        b.servers
            .iter()
            .map(|s| s.target.clone())
            .collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_from_a_bootstrap_over_a_unix_socket_gets_its_namespace_view() {
    let dir = tempfile::tempdir().unwrap();
    // A service in the node's namespace, addressed by short name from there only.
    std::fs::write(
        dir.path().join("echo.yaml"),
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: echo, namespace: echo-grpc}\nspec:\n  hosts: [echo.echo-grpc.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 17070, name: grpc, protocol: GRPC}]\n  endpoints: [{address: 127.0.0.1}]\n",
    )
    .unwrap();
    let socket = dir.path().join("XDS");
    let text = std::fs::read_to_string(fixture())
        .unwrap()
        .replace("/etc/istio/proxy/XDS", socket.to_str().unwrap());
    let bootstrap = Bootstrap::parse(Path::new("bootstrap.json"), &text).unwrap();

    let server = XdsServer::new(vec![dir.path().to_owned()], MeshSettings::default())
        .await
        .unwrap();
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    let incoming = UnixIncoming(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(server.service())
            .serve_with_incoming(incoming),
    );

    let mesh = Mesh::builder()
        .workload(bootstrap.workload())
        .build()
        .await
        .unwrap();
    let client = XdsClient::start(
        mesh.clone(),
        XdsClientConfig::from_bootstrap(&bootstrap)
            .listeners(["echo.echo-grpc.svc.cluster.local:17070"]),
    );
    tokio::time::timeout(Duration::from_secs(10), client.ready())
        .await
        .expect("ready");
    let snapshot = mesh.snapshot();
    let rc = &snapshot.routes[&17070];
    assert!(
        rc.virtual_host("echo:17070").is_some(),
        "short names resolve in the node's namespace"
    );
    assert!(
        snapshot
            .clusters
            .keys()
            .any(|c| c.as_str() == "outbound|17070||echo.echo-grpc.svc.cluster.local")
    );
}

/// Accepted Unix connections as a tonic incoming stream.
struct UnixIncoming(tokio::net::UnixListener);

impl futures_core::Stream for UnixIncoming {
    type Item = std::io::Result<tokio::net::UnixStream>;
    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_accept(cx).map(|r| Some(r.map(|(s, _)| s)))
    }
}

#[tokio::test]
async fn a_mesh_from_the_bootstrap_takes_its_identity_from_the_certificate_provider() {
    // The grpc-agent writes the workload's certificates where the bootstrap's `default`
    // file_watcher provider points; the mesh built from the bootstrap presents them.
    let dir = tempfile::tempdir().unwrap();
    let ca = mesh_core::identity::CertificateAuthority::generate("cluster.local").unwrap();
    let issued = ca
        .issue("echo-grpc", "default", Duration::from_secs(3600))
        .unwrap();
    issued.write_istio_layout(dir.path()).unwrap();
    let text = std::fs::read_to_string(fixture())
        .unwrap()
        .replace("/var/lib/istio/data", dir.path().to_str().unwrap());
    let bootstrap = Bootstrap::parse(Path::new("bootstrap.json"), &text).unwrap();
    let mesh = bootstrap.mesh_builder().build().await.unwrap();
    assert_eq!(mesh.context().workload.namespace, "echo-grpc");
    let identity = mesh
        .identity()
        .expect("identity from the certificate provider");
    assert_eq!(
        identity.current().credentials().spiffe_id().to_string(),
        "spiffe://cluster.local/ns/echo-grpc/sa/default"
    );
}

/// `channel_creds` as gRPC reads it (gRFC A27: the first supported type; gRFC A65: `tls` with
/// its files): `google_default` is skipped for the next type, `tls` takes its files from its
/// config and what it leaves out from the `default` certificate provider.
#[test]
fn channel_creds_choose_tls_or_plaintext() {
    use mesh_xds::client::XdsTls;
    let providers = r#""certificate_providers": {"default": {"plugin_name": "file_watcher", "config": {
        "certificate_file": "/p/cert-chain.pem", "private_key_file": "/p/key.pem",
        "ca_certificate_file": "/p/root-cert.pem"}}}"#;
    let parse = |creds: &str| {
        Bootstrap::parse(
            Path::new("b.json"),
            &format!(
                r#"{{"xds_servers": [{{"server_uri": "cp:15012", "channel_creds": {creds}}}],
                    "node": {{"id": "sidecar~10.0.0.1~a.shop~shop.svc.cluster.local",
                              "metadata": {{"TRUST_DOMAIN": "example.org"}}}}, {providers}}}"#
            ),
        )
        .map(|b| b.servers[0].tls.clone())
    };
    let from_providers =
        XdsTls::new("/p/root-cert.pem", "example.org").identity("/p/cert-chain.pem", "/p/key.pem");
    assert_eq!(
        parse(r#"[{"type": "google_default"}, {"type": "tls"}]"#).unwrap(),
        Some(from_providers.clone())
    );
    assert_eq!(
        from_providers.server_names,
        [
            "istiod.istio-system.svc",
            "spiffe://example.org/ns/istio-system/sa/istiod"
        ]
    );
    assert_eq!(
        parse(r#"[{"type": "tls", "config": {"ca_certificate_file": "/x/roots.pem"}}]"#).unwrap(),
        Some(
            XdsTls::new("/x/roots.pem", "example.org").identity("/p/cert-chain.pem", "/p/key.pem")
        )
    );
    assert_eq!(
        parse(r#"[{"type": "insecure"}, {"type": "tls"}]"#).unwrap(),
        None
    );
    let err = parse(r#"[{"type": "google_default"}, {"type": "alts"}]"#).unwrap_err();
    assert!(
        err.to_string().contains(
            r#"xds_servers[0].channel_creds: none of ["google_default", "alts"] is supported"#
        ),
        "{err}"
    );
    let err = parse(r#"[{"type": "tls", "config": {"certificate_file": 7}}]"#).unwrap_err();
    assert!(
        err.to_string()
            .contains("config.certificate_file: expected a string"),
        "{err}"
    );
}
