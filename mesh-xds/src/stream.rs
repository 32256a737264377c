//! A `Stream` over an mpsc receiver, for tonic's streaming requests and responses.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::mpsc;

/// Yields what the channel receives, ending when every sender is gone.
#[derive(Debug)]
pub(crate) struct ReceiverStream<T>(pub(crate) mpsc::Receiver<T>);

impl<T> futures_core::Stream for ReceiverStream<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.0.poll_recv(cx)
    }
}
