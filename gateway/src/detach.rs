//! A future that is finished even when whoever awaits it goes away.
//!
//! A unary call must not be cancelled when its HTTP client hangs up: each cancelled call is a
//! RST_STREAM to the backend, and servers answer floods of those (a rapid-reset guard) by
//! closing the connection under everyone else's calls. Spawning every call as a task of its
//! own does that, at the price of a task and a cross-thread wake-up per request. [`Detached`]
//! polls the call in the handler's own task instead, and spawns only what is left of it when
//! the handler is dropped first: the rare case pays for the task, the common case does not.
//! (`tokio::spawn` + `JoinHandle` is the only form tokio offers; nothing in tokio-util or
//! futures spawns on drop.)

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

/// `inner`, polled in place until it is done or this is dropped; if dropped first, the rest
/// of `inner` runs as a task of its own.
pub(crate) struct Detached<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    inner: Option<Pin<Box<F>>>,
}

impl<F> Detached<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    pub(crate) fn new(inner: F) -> Self {
        Self {
            inner: Some(Box::pin(inner)),
        }
    }
}

impl<F> Future for Detached<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // Polled again after it completed: a caller's bug; it never completes twice.
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Pending;
        };
        let output = std::task::ready!(inner.as_mut().poll(cx));
        self.inner = None;
        Poll::Ready(output)
    }
}

impl<F> Drop for Detached<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn drop(&mut self) {
        if let Some(rest) = self.inner.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(rest);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Duration};

    use tokio::sync::Notify;

    use super::*;

    #[tokio::test]
    async fn a_detached_future_finishes_after_its_caller_is_gone() {
        let done = Arc::new(Notify::new());
        let signal = Arc::clone(&done);
        let detached = Detached::new(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            signal.notify_one();
        });
        // The caller gives up at once.
        assert!(
            tokio::time::timeout(Duration::from_millis(1), detached)
                .await
                .is_err()
        );
        assert!(
            tokio::time::timeout(Duration::from_secs(5), done.notified())
                .await
                .is_ok(),
            "the rest of the future ran"
        );
    }

    #[tokio::test]
    async fn an_awaited_future_answers_in_place() {
        assert_eq!(Detached::new(async { 7 }).await, 7);
    }
}
