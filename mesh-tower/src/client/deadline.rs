//! A future with an optional time limit, as one future.
//!
//! `match limit { Some(t) => timeout(t, f).await, None => f.await }` over a future made
//! beforehand gives the enclosing `async fn` two await points and keeps `f` twice in its state
//! (the local, and the awaited copy inside `Timeout`); nested through the call path
//! (attempt → attempts → route → call), that doubled the boxed call future at every level, to
//! some 13 KB copied on every call. [`within`] is one await point whatever the limit, so `f` is
//! stored once.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::Sleep;

pin_project! {
    /// [`within`]'s future: `Some(output)`, or `None` once the limit passed first.
    pub(crate) struct Within<F> {
        #[pin]
        inner: F,
        #[pin]
        sleep: Option<Sleep>,
    }
}

/// `f`, cut off after `limit` when there is one (as `tokio::time::timeout`: the future is
/// polled first, so an output ready together with the deadline wins).
pub(crate) fn within<F: IntoFuture>(limit: Option<Duration>, f: F) -> Within<F::IntoFuture> {
    Within {
        inner: f.into_future(),
        sleep: limit.map(tokio::time::sleep),
    }
}

impl<F: Future> Future for Within<F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.inner.poll(cx) {
            return Poll::Ready(Some(output));
        }
        match this.sleep.as_pin_mut() {
            Some(sleep) => sleep.poll(cx).map(|()| None),
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn limits_only_when_given() {
        let slow = || tokio::time::sleep(Duration::from_secs(10));
        assert_eq!(within(Some(Duration::from_secs(1)), slow()).await, None);
        assert_eq!(
            within(Some(Duration::from_secs(11)), slow()).await,
            Some(())
        );
        assert_eq!(within(None, slow()).await, Some(()));
        // Ready at once beats a zero limit, as with `tokio::time::timeout`.
        assert_eq!(within(Some(Duration::ZERO), async { 7 }).await, Some(7));
        // No overflow on a limit past the end of time.
        assert_eq!(within(Some(Duration::MAX), async { 8 }).await, Some(8));
    }
}
