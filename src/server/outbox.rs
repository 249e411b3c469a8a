//! A connection's outbound queue, bounded in bytes: a client that does not read its messages is
//! let go when it is a budget behind, instead of holding the server's memory (or losing the
//! messages that matter, such as a `PeerJoined`, as a dropping queue would).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::mpsc;

use crate::protocol::signal::{self, ServerMsg};

/// What the connection's writer takes from its queue.
#[derive(Debug)]
pub enum Outgoing {
    /// A message, already encoded; `closing` for an error, after which the connection ends.
    Message {
        /// The JSON.
        text: String,
        /// Whether this is the last thing the client is sent.
        closing: bool,
    },
    /// The queue went over its budget: the client is too far behind and is let go.
    Overflow,
}

#[derive(Debug)]
struct Shared {
    /// Bytes pushed and not yet taken by the writer.
    queued: AtomicUsize,
    /// Set once, with the `Overflow` that tells the writer; nothing is queued after it.
    overflowed: AtomicBool,
    budget: usize,
}

/// The sending half, one per connection, cloned into the rooms the connection is in.
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Outgoing>,
    shared: Arc<Shared>,
}

/// The connection's own half: what to write next.
#[derive(Debug)]
pub struct OutboxReader {
    rx: mpsc::UnboundedReceiver<Outgoing>,
    shared: Arc<Shared>,
}

/// A queue of at most `budget` bytes of encoded messages. (The channel is unbounded in count
/// but not in bytes: a push that would go over the budget is refused and the writer told.)
pub fn outbox(budget: usize) -> (Outbox, OutboxReader) {
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared { queued: AtomicUsize::new(0), overflowed: AtomicBool::new(false), budget });
    (Outbox { tx, shared: shared.clone() }, OutboxReader { rx, shared })
}

impl Outbox {
    /// Queues `msg`. False if the client is over its budget (it is then let go: the message
    /// is not lost quietly) or already gone.
    pub fn push(&self, msg: &ServerMsg) -> bool {
        self.push_text(signal::encode(msg), matches!(msg, ServerMsg::Error { .. }))
    }

    /// `push` for a message already encoded (`closing`: it is an `Error`, the last).
    pub fn push_text(&self, text: String, closing: bool) -> bool {
        let s = &self.shared;
        if s.overflowed.load(Ordering::Acquire) {
            return false;
        }
        let len = text.len();
        let before = s.queued.fetch_add(len, Ordering::AcqRel);
        if before.saturating_add(len) > s.budget {
            s.queued.fetch_sub(len, Ordering::AcqRel);
            if !s.overflowed.swap(true, Ordering::AcqRel) {
                let _ = self.tx.send(Outgoing::Overflow);
            }
            return false;
        }
        if self.tx.send(Outgoing::Message { text, closing }).is_err() {
            s.queued.fetch_sub(len, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Whether half the budget waits (or the client is gone for being over it).
    pub fn half_full(&self) -> bool {
        let s = &self.shared;
        s.overflowed.load(Ordering::Acquire) || s.queued.load(Ordering::Acquire) > s.budget / 2
    }

    /// Bytes waiting to be written.
    #[cfg(test)]
    pub fn queued(&self) -> usize {
        self.shared.queued.load(Ordering::Acquire)
    }
}

impl OutboxReader {
    /// The next thing to write; `None` once every `Outbox` is dropped and the queue is empty.
    pub async fn recv(&mut self) -> Option<Outgoing> {
        let out = self.rx.recv().await?;
        if let Outgoing::Message { text, .. } = &out {
            self.shared.queued.fetch_sub(text.len(), Ordering::AcqRel);
        }
        Some(out)
    }

    /// Like `recv`, without waiting (for tests).
    #[cfg(test)]
    pub fn try_recv(&mut self) -> Option<Outgoing> {
        let out = self.rx.try_recv().ok()?;
        if let Outgoing::Message { text, .. } = &out {
            self.shared.queued.fetch_sub(text.len(), Ordering::AcqRel);
        }
        Some(out)
    }

    /// The next message decoded (for tests).
    #[cfg(test)]
    pub fn try_recv_msg(&mut self) -> Option<ServerMsg> {
        match self.try_recv()? {
            Outgoing::Message { text, .. } => signal::decode_server(&text, usize::MAX).ok(),
            Outgoing::Overflow => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::signal::ErrorCode;

    fn msg(n: usize) -> ServerMsg {
        ServerMsg::Error { code: ErrorCode::Idle, message: "x".repeat(n) }
    }

    #[test]
    fn a_reader_that_keeps_up_never_overflows() {
        let (tx, mut rx) = outbox(1000);
        for _ in 0..100 {
            assert!(tx.push(&msg(500)));
            assert!(matches!(rx.try_recv(), Some(Outgoing::Message { .. })));
        }
        assert_eq!(tx.queued(), 0);
    }

    #[test]
    fn going_over_the_budget_refuses_and_tells_the_writer_once() {
        let (tx, mut rx) = outbox(1000);
        assert!(tx.push(&msg(400)));
        assert!(tx.push(&msg(400)));
        assert!(!tx.push(&msg(400)), "a third would be over 1000 bytes");
        assert!(!tx.push(&msg(1)), "nothing is queued after an overflow, however small");
        assert!(tx.queued() <= 1000);
        assert!(matches!(rx.try_recv(), Some(Outgoing::Message { .. })));
        assert!(matches!(rx.try_recv(), Some(Outgoing::Message { .. })));
        assert!(matches!(rx.try_recv(), Some(Outgoing::Overflow)));
        assert!(rx.try_recv().is_none(), "one overflow notice only");
    }

    #[test]
    fn a_gone_reader_refuses() {
        let (tx, rx) = outbox(1000);
        drop(rx);
        assert!(!tx.push(&msg(1)));
        assert_eq!(tx.queued(), 0);
    }
}
