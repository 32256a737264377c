//! A discovery stream as the tests drive it: requests that leave the stream open (as Envoy's
//! do), and the next answer, waited for a bounded time.

use std::time::Duration;

use futures_util::{Stream, StreamExt as _};

/// How long a test waits for an answer the control plane owes.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// `requests`, then a stream that stays open (no half-close: the server keeps pushing).
pub fn open<T>(requests: impl IntoIterator<Item = T>) -> impl Stream<Item = T> {
    futures_util::stream::iter(requests).chain(futures_util::stream::pending())
}

/// The next message of `responses` (`None`: the stream ended), or the status that ended it;
/// panics when none comes within [`ANSWER_TIMEOUT`].
pub async fn next<T>(responses: &mut tonic::Streaming<T>) -> Result<Option<T>, tonic::Status> {
    tokio::time::timeout(ANSWER_TIMEOUT, responses.message())
        .await
        .expect("an answer in time")
}
