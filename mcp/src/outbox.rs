//! Bounded queues of target messages on their way to one client's SSE stream (or to the
//! gateway task that logs them for it). A sender never waits on a client: a chatty target and
//! a client that reads slowly, or not at all, must not grow the gateway's memory, and must not
//! hold up the upstream reader that other sessions share.
//!
//! When a client-facing queue is full the stream is *cut*: it takes nothing more, the client
//! reads what was queued, then the end of the stream. The cut is logged and counted
//! (`mcp_slow_streams_cut`). Messages refused by a cut queue take the caller's fallback (the
//! session's standalone stream, whose events are logged first, so a client that reconnects
//! with `Last-Event-ID` gets them; a server-to-client request that reaches no client is
//! answered to the target with a JSON-RPC error). A queue drained by the gateway itself (a
//! managed POST's logger, the relay of upstream standalone streams) is [`Mode::Spill`]: when
//! full it refuses the message (which then takes the fallback) without ending the stream.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::{SendError, TrySendError};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// Default of [`crate::McpConfig::max_queued_messages`].
pub const DEFAULT_MAX_QUEUED_MESSAGES: usize = 1024;

/// What a full queue does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// End the stream (a client that does not keep up).
    Cut,
    /// Refuse the message only (the consumer is the gateway's own task).
    Spill,
}

/// The queue bound and where cuts are counted.
#[derive(Clone, Debug)]
pub(crate) struct Bound {
    pub cap: usize,
    pub metrics: Metrics,
}

struct Shared {
    cut: CancellationToken,
    once: AtomicBool,
    mode: Mode,
    /// `standalone`, `request`, `legacy`, `input` (label of the cut metric).
    stream: &'static str,
    bound: Bound,
}

impl Shared {
    fn cut(&self) {
        if self.once.swap(true, Ordering::Relaxed) {
            return;
        }
        self.cut.cancel();
        self.bound.metrics.stream_cut(self.stream);
        tracing::warn!(
            stream = self.stream,
            max_queued_messages = self.bound.cap,
            "client does not read its SSE stream fast enough: stream closed"
        );
    }
}

/// The sending half (cheap clone).
pub(crate) struct Outbox<T> {
    tx: mpsc::Sender<T>,
    shared: Arc<Shared>,
}

impl<T> Clone for Outbox<T> {
    fn clone(&self) -> Self {
        Outbox {
            tx: self.tx.clone(),
            shared: self.shared.clone(),
        }
    }
}

/// The receiving half.
pub(crate) struct Inbox<T> {
    rx: mpsc::Receiver<T>,
    shared: Arc<Shared>,
}

/// A queue of at most `bound.cap` messages toward one stream.
pub(crate) fn outbox<T>(bound: &Bound, mode: Mode, stream: &'static str) -> (Outbox<T>, Inbox<T>) {
    let (tx, rx) = mpsc::channel(bound.cap.max(1));
    let shared = Arc::new(Shared {
        cut: CancellationToken::new(),
        once: AtomicBool::new(false),
        mode,
        stream,
        bound: bound.clone(),
    });
    (
        Outbox {
            tx,
            shared: shared.clone(),
        },
        Inbox { rx, shared },
    )
}

impl<T> Outbox<T> {
    /// Queue `v` without waiting; a full queue cuts the stream ([`Mode::Cut`]) or refuses just
    /// this message ([`Mode::Spill`]). The message comes back when it was not taken.
    pub fn send(&self, v: T) -> Result<(), SendError<T>> {
        if self.shared.cut.is_cancelled() {
            return Err(SendError(v));
        }
        match self.tx.try_send(v) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(v)) => {
                if self.shared.mode == Mode::Cut {
                    self.shared.cut();
                }
                Err(SendError(v))
            }
            Err(TrySendError::Closed(v)) => Err(SendError(v)),
        }
    }

    /// Queue the reply that ends a request's stream: waits for room (in the request's own
    /// task), unless the stream is cut or gone.
    pub async fn send_last(&self, v: T) -> Result<(), SendError<T>> {
        let permit = tokio::select! {
            p = self.tx.reserve() => p,
            _ = self.shared.cut.cancelled() => return Err(SendError(v)),
        };
        match permit {
            Ok(p) => {
                p.send(v);
                Ok(())
            }
            Err(_) => Err(SendError(v)),
        }
    }

    /// Whether the stream is gone or cut.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed() || self.shared.cut.is_cancelled()
    }

    /// Resolves when the stream is gone or cut.
    pub async fn closed(&self) {
        tokio::select! {
            _ = self.tx.closed() => {}
            _ = self.shared.cut.cancelled() => {}
        }
    }
}

impl<T> Inbox<T> {
    /// The next message; after a cut, what was queued, then `None`.
    pub async fn recv(&mut self) -> Option<T> {
        if !self.shared.cut.is_cancelled() {
            tokio::select! {
                biased;
                v = self.rx.recv() => return v,
                _ = self.shared.cut.cancelled() => {}
            }
        }
        self.rx.close();
        self.rx.recv().await
    }

    /// A message already queued, if any.
    pub fn try_recv(&mut self) -> Option<T> {
        self.rx.try_recv().ok()
    }

    /// The messages as a stream.
    pub fn into_stream(self) -> impl futures::Stream<Item = T> + Send + 'static
    where
        T: Send + 'static,
    {
        futures::stream::unfold(self, |mut inbox| async move {
            inbox.recv().await.map(|v| (v, inbox))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound(cap: usize) -> Bound {
        Bound {
            cap,
            metrics: Metrics::unregistered(),
        }
    }

    #[tokio::test]
    async fn a_full_queue_cuts_the_stream_after_what_was_queued() {
        let b = bound(2);
        let (tx, mut rx) = outbox::<u32>(&b, Mode::Cut, "standalone");
        assert!(tx.send(1).is_ok());
        assert!(tx.send(2).is_ok());
        assert_eq!(tx.send(3).unwrap_err().0, 3, "full: refused");
        assert!(tx.is_closed());
        assert!(
            tx.send_last(4).await.is_err(),
            "cut: the reply is refused too"
        );
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(rx.recv().await, Some(2));
        assert_eq!(rx.recv().await, None);
        assert_eq!(b.metrics.cuts("standalone"), 1);
        tx.closed().await;
    }

    #[tokio::test]
    async fn a_spilling_queue_refuses_but_stays_open() {
        let b = bound(1);
        let (tx, mut rx) = outbox::<u32>(&b, Mode::Spill, "request");
        assert!(tx.send(1).is_ok());
        assert!(tx.send(2).is_err());
        assert!(!tx.is_closed());
        let tx2 = tx.clone();
        let last = tokio::spawn(async move { tx2.send_last(3).await.is_ok() });
        assert_eq!(rx.recv().await, Some(1));
        assert!(last.await.unwrap(), "the reply waits for room");
        assert_eq!(rx.recv().await, Some(3));
        drop(tx);
        assert_eq!(rx.recv().await, None);
        assert_eq!(b.metrics.cuts("request"), 0);
    }
}
