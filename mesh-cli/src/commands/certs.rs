//! `mesh certs`: a development CA and workload identities, in the layouts Istio uses.
//!
//! `init` creates a CA directory (`ca-cert.pem`, `ca-key.pem`, `root-cert.pem`; Istio's plug-in
//! CA layout). `issue` mints a workload identity from it into `cert-chain.pem`, `key.pem`,
//! `root-cert.pem` (the layout `IdentityFiles::in_dir` reads). Keys are written with mode 0600.
//! For production, use the mesh's CA (istiod, cert-manager, SPIRE); this is for tests and demos.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use mesh_core::identity::{CertificateAuthority, Credentials, IssueOptions, SpiffeId};
use mesh_core::model::parse_duration;
use rustls_pki_types::UnixTime;

use super::CliError;

#[derive(Debug, Subcommand)]
pub(super) enum CertsCommand {
    /// Create a self-signed root CA in a directory.
    Init(InitArgs),
    /// Issue a workload identity (SPIFFE ID spiffe://<td>/ns/<ns>/sa/<sa>) from a CA.
    Issue(IssueArgs),
}

#[derive(Debug, Args)]
pub(super) struct InitArgs {
    /// Directory to write the CA into (created if missing).
    #[arg(long)]
    dir: PathBuf,
    /// SPIFFE trust domain of the mesh.
    #[arg(long, default_value = "cluster.local")]
    trust_domain: String,
    /// Replace an existing CA in the directory.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
pub(super) struct IssueArgs {
    /// The CA directory made by `mesh certs init`.
    #[arg(long)]
    dir: PathBuf,
    /// Namespace of the workload.
    #[arg(long)]
    namespace: String,
    /// Service account of the workload.
    #[arg(long)]
    service_account: String,
    /// Directory to write cert-chain.pem, key.pem and root-cert.pem into (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Lifetime of the certificate (Go duration: 24h, 90m, 3600s).
    #[arg(long, default_value = "24h", value_parser = parse_ttl)]
    ttl: Duration,
    /// Also a DNS name the server answers to (repeatable), so curl and gRPC clients outside
    /// the mesh can verify it by host name; mesh peers still check the SPIFFE ID only.
    #[arg(long = "dns", value_name = "NAME", value_parser = parse_dns)]
    dns: Vec<String>,
}

fn parse_dns(s: &str) -> Result<String, String> {
    rustls_pki_types::DnsName::try_from(s)
        .map(|_| s.to_ascii_lowercase())
        .map_err(|_| format!("{s:?} is not a valid DNS name"))
}

fn parse_ttl(s: &str) -> Result<Duration, String> {
    match parse_duration(s) {
        Ok(d) if d.is_zero() => Err("ttl must be positive".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}

impl CertsCommand {
    pub(super) fn run(self) -> Result<(), CliError> {
        match self {
            Self::Init(args) => init(args),
            Self::Issue(args) => issue(args),
        }
    }
}

fn init(args: InitArgs) -> Result<(), CliError> {
    let key = args.dir.join(CertificateAuthority::CA_KEY);
    if key.exists() && !args.force {
        return Err(format!(
            "{} already holds a CA; pass --force to replace it (identities it issued will no \
             longer be trusted)",
            args.dir.display()
        )
        .into());
    }
    let ca = CertificateAuthority::generate(&args.trust_domain)?;
    ca.save(&args.dir)?;
    println!(
        "created a root CA for trust domain {} in {}",
        ca.trust_domain(),
        args.dir.display()
    );
    Ok(())
}

fn issue(args: IssueArgs) -> Result<(), CliError> {
    let ca = CertificateAuthority::load(&args.dir)?;
    let id = SpiffeId::istio(ca.trust_domain(), &args.namespace, &args.service_account)?;
    let options = IssueOptions::new(id, args.ttl).dns_names(args.dns.iter().cloned());
    let issued = ca.issue_with(&options)?;
    let files = issued.write_istio_layout(&args.out)?;
    // Read back what was written, with the same checks a workload will apply.
    let credentials = Credentials::load(&files, UnixTime::now())?;
    println!(
        "issued {} (expires {}) into {}",
        credentials.spiffe_id(),
        credentials.leaf_not_after(),
        args.out.display()
    );
    if !args.dns.is_empty() {
        println!("  DNS names: {}", args.dns.join(", "));
    }
    Ok(())
}
