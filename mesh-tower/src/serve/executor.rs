//! The executor hyper spawns HTTP/2 streams on, with Envoy's `stream_idle_timeout`.
//!
//! hyper runs each HTTP/2 stream (the service future and the pump that writes its response)
//! as a task of its own, spawned through the connection builder's executor. A stream whose
//! client never opens its flow-control window parks that task forever: hyper waits for
//! capacity and nothing wakes it. Wrapping every spawned task in [`IdleTimeout`] bounds that:
//! a task not woken for the stream idle timeout is dropped, and dropping a stream's task makes
//! h2 reset the stream (`RST_STREAM(CANCEL)`) and free its state.
//!
//! "Woken" is the measure of activity: a stream's task is woken when a frame arrives for it,
//! when window opens, or when the application's future or body makes progress, which is the
//! activity Envoy's timer watches in both directions.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::rt::Executor;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

/// Spawns hyper's HTTP/2 stream tasks on tokio, each under [`IdleTimeout`].
#[derive(Clone, Debug)]
pub(super) struct StreamExecutor {
    idle: Duration,
}

impl StreamExecutor {
    pub(super) fn new(idle: Duration) -> Self {
        Self { idle }
    }
}

impl<F> Executor<F> for StreamExecutor
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, fut: F) {
        // A named future rather than an `async` block around the timeout: the block would
        // hold the stream's future once more and move it again on its first poll.
        tokio::spawn(StreamTask {
            inner: IdleTimeout::new(fut, self.idle),
        });
    }
}

pin_project! {
    /// A stream's task: the stream under [`IdleTimeout`], its timeouts counted and logged.
    struct StreamTask<F> {
        #[pin]
        inner: IdleTimeout<F>,
    }
}

impl<F: Future<Output = ()>> Future for StreamTask<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let ended = std::task::ready!(self.project().inner.poll(cx));
        if ended.is_err() {
            metrics::counter!(STREAM_IDLE_TIMEOUTS).increment(1);
            tracing::debug!(target: "mesh::inbound", "HTTP/2 stream reset: idle timeout");
        }
        Poll::Ready(())
    }
}

/// Counter of streams reset by the stream idle timeout.
pub(super) const STREAM_IDLE_TIMEOUTS: &str = "mesh_inbound_stream_idle_timeouts_total";

/// The stream idle timeout elapsed.
#[derive(Debug)]
pub(super) struct Elapsed;

pin_project! {
    /// Runs `inner` until it completes or goes `idle` without being woken; see the
    /// [module docs](self).
    ///
    /// The deadline is moved lazily: each poll stamps the time, and the timer, when it fires
    /// early because of later activity, is re-armed from the last stamp. So a busy stream
    /// touches the timer wheel about once per timeout, not once per poll.
    pub(super) struct IdleTimeout<F> {
        #[pin]
        inner: F,
        #[pin]
        sleep: Sleep,
        idle: Duration,
        last: Instant,
    }
}

impl<F> IdleTimeout<F> {
    pub(super) fn new(inner: F, idle: Duration) -> Self {
        let now = Instant::now();
        Self {
            inner,
            sleep: tokio::time::sleep_until(now + idle),
            idle,
            last: now,
        }
    }
}

impl<F: Future<Output = ()>> Future for IdleTimeout<F> {
    type Output = Result<(), Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut me = self.project();
        let now = Instant::now();
        // A poll after the timer fired is the timer's, not the stream's: it is not activity.
        let timer = me.sleep.is_elapsed();
        if timer && now >= *me.last + *me.idle {
            return Poll::Ready(Err(Elapsed));
        }
        if me.inner.poll(cx).is_ready() {
            return Poll::Ready(Ok(()));
        }
        if !timer {
            // Stamped after the poll: a stream busy in a long poll (an application building
            // a large response) was active until the poll returned.
            *me.last = Instant::now();
        }
        loop {
            if me.sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            // The timer fired, but the stream was active since it was armed: re-arm it.
            let deadline = *me.last + *me.idle;
            me.sleep.as_mut().reset(deadline);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_future_never_woken_times_out() {
        let started = Instant::now();
        let result = IdleTimeout::new(std::future::pending(), Duration::from_secs(300)).await;
        assert!(result.is_err());
        assert_eq!(started.elapsed(), Duration::from_secs(300));
    }

    #[tokio::test(start_paused = true)]
    async fn activity_moves_the_deadline() {
        // Woken every 200 s for 1000 s: never idle for 300 s, so it completes.
        let busy = async {
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_secs(200)).await;
            }
        };
        let started = Instant::now();
        let result = IdleTimeout::new(busy, Duration::from_secs(300)).await;
        assert!(result.is_ok());
        assert_eq!(started.elapsed(), Duration::from_secs(1000));
    }

    #[tokio::test(start_paused = true)]
    async fn idle_after_activity_times_out_from_the_last_activity() {
        let stalls = async {
            tokio::time::sleep(Duration::from_secs(100)).await;
            std::future::pending::<()>().await;
        };
        let started = Instant::now();
        let result = IdleTimeout::new(stalls, Duration::from_secs(300)).await;
        assert!(result.is_err());
        assert_eq!(started.elapsed(), Duration::from_secs(400));
    }
}
