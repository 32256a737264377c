//! gRFC A71's way back: while the client streams from a fallback control plane, the primary is
//! probed in the background; a probe succeeds when the primary's stream delivers its first
//! response, and the worker then moves onto that stream.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use tokio::sync::mpsc;

use super::connect;
use crate::bootstrap::XdsTarget;
use crate::stream::ReceiverStream;

/// The primary's stream, opened while the client was on a fallback, once it has delivered its
/// first response.
pub(super) struct Probed {
    pub(super) tx: mpsc::Sender<DiscoveryRequest>,
    pub(super) responses: tonic::Streaming<DiscoveryResponse>,
    pub(super) first: DiscoveryResponse,
    /// The resource names asked for on it, by type URL.
    pub(super) sent: BTreeMap<String, Vec<String>>,
}

pub(super) type Probe = Pin<Box<dyn Future<Output = Result<Box<Probed>, String>> + Send>>;

/// Probes `target` after `delay`: connects, opens a stream with `requests`, and waits up to
/// `first_response` for the first response (a primary that accepts and never answers is tried
/// again later rather than waited on forever).
pub(super) fn probe(
    target: Option<XdsTarget>,
    tls: Option<super::tls::XdsTls>,
    requests: Vec<DiscoveryRequest>,
    delay: Duration,
    connect_timeout: Duration,
    first_response: Duration,
) -> Probe {
    Box::pin(async move {
        tokio::time::sleep(delay).await;
        let target = target.ok_or_else(|| "no primary server".to_owned())?;
        let sent = requests
            .iter()
            .map(|r| (r.type_url.clone(), r.resource_names.clone()))
            .collect();
        let channel = connect::connect(&target, tls.as_ref(), connect_timeout)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let (tx, mut responses) = open_stream(channel, requests).await?;
        match tokio::time::timeout(first_response, responses.message()).await {
            Ok(Ok(Some(first))) => Ok(Box::new(Probed {
                tx,
                responses,
                first,
                sent,
            })),
            Ok(Ok(None)) => Err("server closed the stream".into()),
            Ok(Err(status)) => Err(status.to_string()),
            Err(_) => Err(format!("no response within {first_response:?}")),
        }
    })
}

/// Opens the ADS stream on `channel`, `requests` first.
pub(super) async fn open_stream(
    channel: tonic::transport::Channel,
    requests: Vec<DiscoveryRequest>,
) -> Result<
    (
        mpsc::Sender<DiscoveryRequest>,
        tonic::Streaming<DiscoveryResponse>,
    ),
    String,
> {
    let (tx, rx) = mpsc::channel(64);
    for request in requests {
        // The channel has room for the four opening requests.
        let _ = tx.try_send(request);
    }
    let mut client =
        AggregatedDiscoveryServiceClient::new(channel).max_decoding_message_size(64 << 20);
    let responses = client
        .stream_aggregated_resources(ReceiverStream(rx))
        .await
        .map_err(|status| format!("open stream: {status}"))?
        .into_inner();
    Ok((tx, responses))
}

pub(super) async fn poll_probe(probe: &mut Option<Probe>) -> Result<Box<Probed>, String> {
    match probe {
        Some(p) => p.await,
        None => std::future::pending().await,
    }
}
