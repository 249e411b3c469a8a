//! The two queues to the bus's sending edge. Control (joins and their answers, leaving,
//! releases) has a lane of its own, taken first, so a flood of signals and deliveries cannot
//! push it out: a lost `Leave` would keep a participant in a room for good. Within a lane,
//! order is kept; a `Joined` queued before a `Deliver` to the same client goes out before it.

use tokio::sync::mpsc;

use super::bus::{BusMsg, ServerId};

/// What the bus's edge is to do.
#[derive(Debug, PartialEq)]
pub enum Op {
    /// Send `msg` to server `to`.
    Publish {
        /// The server.
        to: ServerId,
        /// The message.
        msg: BusMsg,
    },
    /// The room closed here: its name in the cluster is free again, if still this claim's.
    Release {
        /// The room.
        room: String,
        /// The claim's token.
        token: String,
    },
}

/// Control messages waiting, at most.
pub const CONTROL_QUEUE: usize = 4096;
/// Signals and deliveries waiting, at most: past it a client's signal is refused, and a
/// room's messages to a client elsewhere wait (its outbox fills, and it is let go past its
/// budget).
pub const DATA_QUEUE: usize = 1024;

/// The sending halves.
#[derive(Clone)]
pub struct Lanes {
    /// Joins, answers, leaving, releases.
    pub control: mpsc::Sender<Op>,
    /// Signals and deliveries.
    pub data: mpsc::Sender<Op>,
}

/// The edge's half.
pub struct LanesRx {
    control: mpsc::Receiver<Op>,
    data: mpsc::Receiver<Op>,
}

/// A pair of lanes.
pub fn lanes() -> (Lanes, LanesRx) {
    let (control, control_rx) = mpsc::channel(CONTROL_QUEUE);
    let (data, data_rx) = mpsc::channel(DATA_QUEUE);
    (Lanes { control, data }, LanesRx { control: control_rx, data: data_rx })
}

impl LanesRx {
    /// The next operation, control first; `None` once both lanes are closed and empty.
    pub async fn recv(&mut self) -> Option<Op> {
        tokio::select! {
            biased;
            Some(op) = self.control.recv() => Some(op),
            Some(op) = self.data.recv() => Some(op),
            else => None,
        }
    }

    /// The next operation if one waits, control first (for tests).
    #[cfg(test)]
    pub fn try_recv(&mut self) -> Option<Op> {
        self.control.try_recv().or_else(|_| self.data.try_recv()).ok()
    }
}
