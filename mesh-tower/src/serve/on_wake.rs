//! A future polled only when it asked to be.
//!
//! A connection's task is woken for every frame the connection reads or writes, a few times per
//! request, and a `select!` polls every branch each time. The supervisor's branches (the drain
//! signal, the eviction notice, the timeout timer) almost never complete, but each poll of them
//! re-registers a waker, two of them under a lock. [`OnWake`] gives its future a waker of its
//! own and polls it only after that waker fired (or on the first poll): between its own events it
//! costs the task an atomic swap per wake-up.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;
use pin_project_lite::pin_project;

/// Whether the inner future's waker fired since its last poll, and the task to wake.
#[derive(Default)]
struct Flag {
    fired: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        self.task.wake();
    }
}

pin_project! {
    /// `inner`, polled only when its own waker fired since its last poll; see the
    /// [module docs](self).
    pub(super) struct OnWake<F> {
        #[pin]
        inner: F,
        flag: Arc<Flag>,
        waker: Waker,
    }
}

impl<F: Future> OnWake<F> {
    pub(super) fn new(inner: F) -> Self {
        let flag = Arc::new(Flag::default());
        // The first poll polls `inner`, so that it registers its wakers.
        flag.fired.store(true, Ordering::Relaxed);
        Self {
            inner,
            waker: Waker::from(flag.clone()),
            flag,
        }
    }
}

impl<F: Future> Future for OnWake<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        // Registered before the flag is read: a wake between the two finds this task's waker.
        this.flag.task.register(cx.waker());
        if !this.flag.fired.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        this.inner.poll(&mut Context::from_waker(this.waker))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::sync::Notify;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn completes_when_its_future_does() {
        let timer = OnWake::new(tokio::time::sleep(Duration::from_secs(5)));
        let started = tokio::time::Instant::now();
        timer.await;
        assert_eq!(started.elapsed(), Duration::from_secs(5));

        let notify = Arc::new(Notify::new());
        let waiter = tokio::spawn({
            let notify = notify.clone();
            async move { OnWake::new(notify.notified()).await }
        });
        tokio::task::yield_now().await;
        notify.notify_one();
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("woken by its own waker")
            .expect("no panic");
    }

    /// Polled among other branches that wake the task again and again, the inner future is
    /// polled once to register its waker and once when that waker fires, not once per wake-up.
    #[tokio::test(start_paused = true)]
    async fn other_wake_ups_do_not_poll_it() {
        let polls = std::cell::Cell::new(0);
        let stored: std::cell::RefCell<Option<Waker>> = std::cell::RefCell::new(None);
        let counted = std::future::poll_fn(|cx| {
            polls.set(polls.get() + 1);
            if polls.get() == 1 {
                *stored.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        });
        let mut once = std::pin::pin!(OnWake::new(counted));
        let mut rounds = 0;
        loop {
            rounds += 1;
            if rounds == 50 {
                // Its own event, at last.
                if let Some(waker) = stored.borrow_mut().take() {
                    waker.wake();
                }
            }
            tokio::select! {
                biased;
                () = once.as_mut() => break,
                // Wakes the task at once: the other branches of a busy connection.
                () = tokio::task::yield_now() => {}
            }
            assert!(rounds < 100, "never completed");
        }
        assert_eq!(polls.get(), 2, "a poll to register, a poll when woken");
        assert_eq!(rounds, 50);
    }
}
