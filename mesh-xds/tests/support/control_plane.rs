//! `mesh xds serve` started in process on 127.0.0.1, plaintext or secured (TLS on its port,
//! a CA minted at test time, bootstrap tokens), as the tests' control plane.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use mesh_core::MeshSettings;
use mesh_core::identity::{CertificateAuthority, SpiffeId};
use mesh_xds::client::certs::CertificateProviderConfig;
use mesh_xds::server::auth::Tokens;
use mesh_xds::server::{ControlPlaneSecurity, XdsServer};
use tokio::net::TcpListener;

/// The bootstrap token of `default/reviews`.
pub const REVIEWS_TOKEN: &str = "reviews-token-0123456789abcdef";
/// The bootstrap token of `default/ratings`.
pub const RATINGS_TOKEN: &str = "ratings-token-0123456789abcdef";

/// A config for a control plane to serve: the `inventory` ServiceEntry on port 8080.
pub const INVENTORY: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: inventory, namespace: default}
spec:
  hosts: [inventory.default.svc.cluster.local]
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
";

/// A plaintext control plane serving the config files of `dir`, until the test ends.
pub async fn serve_dir(dir: &Path) -> SocketAddr {
    let server = XdsServer::new(vec![dir.to_owned()], MeshSettings::default())
        .await
        .unwrap();
    serve(server).await
}

async fn serve(server: XdsServer) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server.serve(listener, std::future::pending()));
    addr
}

/// Tokens of the `cluster.local` trust domain, in the token file's format.
pub fn tokens(text: &str) -> Tokens {
    Tokens::parse(text, "cluster.local").unwrap()
}

/// A secured control plane and where its files are.
pub struct ControlPlane {
    /// Where it listens (TLS).
    pub addr: SocketAddr,
    /// Its CA (generated for `cluster.local`), to mint callers' certificates.
    pub ca: CertificateAuthority,
    /// The CA's root certificate file: what a workload trusts the control plane by.
    pub roots: PathBuf,
    /// Holds `ca/`, `config/` and whatever the test writes beside them.
    pub dir: tempfile::TempDir,
}

impl ControlPlane {
    /// Starts a secured control plane with a new CA in `<dir>/ca`, serving `<dir>/config`
    /// (holding `config` as `mesh.yaml`, or empty), its security completed by `secure` (tokens,
    /// limits; given the temporary directory, e.g. for a token file).
    pub async fn start(
        config: Option<&str>,
        secure: impl FnOnce(ControlPlaneSecurity, &Path) -> ControlPlaneSecurity,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca_dir = dir.path().join("ca");
        CertificateAuthority::generate("cluster.local")
            .unwrap()
            .save(&ca_dir)
            .unwrap();
        let config_dir = dir.path().join("config");
        std::fs::create_dir(&config_dir).unwrap();
        if let Some(config) = config {
            std::fs::write(config_dir.join("mesh.yaml"), config).unwrap();
        }
        let security = secure(ControlPlaneSecurity::load(&ca_dir).unwrap(), dir.path());
        let server = XdsServer::new_secured(vec![config_dir], MeshSettings::default(), security)
            .await
            .unwrap();
        ControlPlane {
            addr: serve(server).await,
            ca: CertificateAuthority::load(&ca_dir).unwrap(),
            roots: ca_dir.join(CertificateAuthority::ROOT_CERT),
            dir,
        }
    }

    /// The certificate provider of `default/reviews`, asking this control plane with its
    /// bootstrap token and keeping its files in `certs`.
    pub fn reviews_provider(&self, certs: &Path) -> CertificateProviderConfig {
        let mut config = CertificateProviderConfig::new(
            self.addr.to_string(),
            &self.roots,
            certs,
            SpiffeId::istio("cluster.local", "default", "reviews").unwrap(),
        );
        config.token = Some(REVIEWS_TOKEN.into());
        config
    }
}
