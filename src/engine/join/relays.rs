//! Relay links at the edge (issue 19): one task per neighbour the host introduced. The core
//! decides everything — whom to link with, what to ask, what to send, when to give up — and
//! this carries it out: it sets up the WebRTC link (`PeerLink::relay_offer`/`relay_answer`)
//! with the SDPs the core signs and checks, then moves bytes. Sends are queued, never awaited
//! by the session; a queue so full that the link must be stuck ends the link.

use std::collections::{HashMap, VecDeque};

use bytes::{Bytes, BytesMut};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use webrtc::data_channel::{DataChannel, DataChannelEvent};

use crate::net::peer::{self, IceConfig, PeerLink};
use crate::protocol::stream::{self, Message, Space};

/// What a link's task has to say.
pub(super) enum RelayNews {
    /// This side's offer or answer, for the core to sign and send through the host.
    LocalSdp(u32, String),
    /// The link is up: its queue for what goes to the neighbour.
    Up(u32, mpsc::Sender<Out>),
    /// From the neighbour's control channel.
    Control(u32, BytesMut),
    /// From the neighbour's chunks channel.
    Chunk(u32, BytesMut),
    /// A chunk handed to the link is done with: this many bytes went out (0: it could not).
    Sent(u32, usize),
    /// The link is over, and why.
    Gone(u32, String),
}

/// What goes to a neighbour.
pub(super) enum Out {
    Control(Vec<u8>),
    Chunk(BytesMut),
}

/// Messages and chunks queued for a neighbour beyond what its channels buffer. The core hands
/// out at most a quarter second of its measured upload in chunks, and a neighbour's messages
/// are few: a full queue is a stuck link.
const OUT_QUEUE: usize = 256;

/// News waiting for the session. Its readers wait when it is full, so a neighbour sending
/// faster than the session takes it is held back by SCTP's window.
const NEWS_DEPTH: usize = 512;

/// One neighbour.
struct Slot {
    task: Option<JoinHandle<()>>,
    /// The offerer's way to hand its task the neighbour's answer.
    answer: Option<oneshot::Sender<String>>,
    /// Once up.
    out: Option<mpsc::Sender<Out>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        // The link's connection closes with its task (`ClosingPc`).
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

/// Every relay link of one participant.
pub(super) struct Relays {
    ice: IceConfig,
    links: HashMap<u32, Slot>,
    news_tx: mpsc::Sender<RelayNews>,
    news_rx: mpsc::Receiver<RelayNews>,
    /// News made here (a send that could not be queued, a stuck link): never lost to a full
    /// channel, and taken before the tasks' news.
    own: VecDeque<RelayNews>,
}

impl Relays {
    /// Relay links set up with `ice` (the host link's STUN/TURN, binds and policy).
    pub(super) fn new(ice: IceConfig) -> Relays {
        let (news_tx, news_rx) = mpsc::channel(NEWS_DEPTH);
        Relays { ice, links: HashMap::new(), news_tx, news_rx, own: VecDeque::new() }
    }

    /// The next news (cancel-safe, for `select!`; never ends: the sender is held here).
    pub(super) async fn next(&mut self) -> RelayNews {
        if let Some(news) = self.own.pop_front() {
            return news;
        }
        self.news_rx.recv().await.expect("the sender is held by `Relays`")
    }

    /// The core's `RelayOpen`: an offerer starts at once; an answerer waits for the offer.
    pub(super) fn open(&mut self, link: u32, offerer: bool) {
        let mut slot = Slot { task: None, answer: None, out: None };
        if offerer {
            let (local_tx, local_rx) = oneshot::channel();
            let (answer_tx, answer_rx) = oneshot::channel();
            let ice = self.ice.clone();
            slot.answer = Some(answer_tx);
            slot.task = Some(self.spawn(link, local_rx, async move { PeerLink::relay_offer(&ice, local_tx, answer_rx).await }));
        }
        // A link opened again replaces the old one (its drop closes it).
        self.links.insert(link, slot);
    }

    /// The core's `RelayRemoteSdp`: the offerer's answer, or the offer an answerer answers.
    pub(super) fn remote_sdp(&mut self, link: u32, sdp: String) {
        let ice = self.ice.clone();
        let Some(slot) = self.links.get_mut(&link) else { return };
        if let Some(answer) = slot.answer.take() {
            let _ = answer.send(sdp);
        } else if slot.task.is_none() {
            let (local_tx, local_rx) = oneshot::channel();
            let task = self.spawn(link, local_rx, async move { PeerLink::relay_answer(&ice, sdp, local_tx).await });
            if let Some(slot) = self.links.get_mut(&link) {
                slot.task = Some(task);
            }
        }
    }

    /// A message for the neighbour; dropped if the link is not up (the core knows when it is).
    pub(super) fn send(&mut self, link: u32, msg: &Message) {
        self.queue(link, Out::Control(stream::encode(msg)));
    }

    /// A chunk for the neighbour; `Sent` says when it went (or could not).
    pub(super) fn send_chunk(&mut self, link: u32, space: Space, index: u32, data: &Bytes) {
        let header = stream::encode_chunk_header(space, index, data.len());
        let mut frame = BytesMut::with_capacity(header.len() + data.len());
        frame.extend_from_slice(&header);
        frame.extend_from_slice(data);
        if !self.queue(link, Out::Chunk(frame)) {
            // Not sent: done with all the same (its link is going, or never came up).
            self.own.push_back(RelayNews::Sent(link, 0));
        }
    }

    fn queue(&mut self, link: u32, out: Out) -> bool {
        let Some(tx) = self.links.get(&link).and_then(|s| s.out.as_ref()) else { return false };
        match tx.try_send(out) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.links.remove(&link);
                self.own.push_back(RelayNews::Gone(link, format!("the link is stuck ({OUT_QUEUE} messages wait)")));
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// The link is up: its queue goes to the slot.
    pub(super) fn up(&mut self, link: u32, out: mpsc::Sender<Out>) -> bool {
        match self.links.get_mut(&link) {
            Some(slot) => {
                slot.out = Some(out);
                true
            }
            None => false,
        }
    }

    /// The core's `RelayClose`, or the link's own end.
    pub(super) fn close(&mut self, link: u32) {
        self.links.remove(&link);
    }

    /// Runs a link: its set-up (`setup`, handing this side's SDP out through `local`), then
    /// its traffic, until it fails or is closed.
    fn spawn<F>(&self, link: u32, local: oneshot::Receiver<String>, setup: F) -> JoinHandle<()>
    where
        F: std::future::Future<Output = Result<PeerLink, peer::LinkError>> + Send + 'static,
    {
        let news = self.news_tx.clone();
        tokio::spawn(async move {
            let sdp_news = news.clone();
            let _handing = Aborts(tokio::spawn(async move {
                if let Ok(sdp) = local.await {
                    let _ = sdp_news.send(RelayNews::LocalSdp(link, sdp)).await;
                }
            }));
            let outcome = setup.await;
            let why = match outcome {
                Ok(l) => run(link, l, &news).await,
                Err(e) => format!("no link: {e}"),
            };
            let _ = news.send(RelayNews::Gone(link, why)).await;
        })
    }
}

/// A link's traffic: readers for both channels, the writer here, until something ends it.
async fn run(link: u32, l: PeerLink, news: &mpsc::Sender<RelayNews>) -> String {
    let (out_tx, mut out_rx) = mpsc::channel(OUT_QUEUE);
    // Up first: what the neighbour said early makes the core answer at once.
    if news.send(RelayNews::Up(link, out_tx)).await.is_err() {
        return "the session is over".into();
    }
    for b in l.early_control.iter().cloned() {
        if news.send(RelayNews::Control(link, b)).await.is_err() {
            return "the session is over".into();
        }
    }
    // The readers stop with this task, however it ends (an aborted task runs no code after).
    let _readers = [Aborts(read(link, l.control.clone(), news.clone(), false)), Aborts(read(link, l.chunks.clone(), news.clone(), true))];
    let why = tokio::select! {
        why = write(link, &l, &mut out_rx, news) => why,
        _ = l.closed() => "the WebRTC connection failed".into(),
    };
    l.close().await;
    why
}

/// A task that stops when this goes.
struct Aborts(JoinHandle<()>);

impl Drop for Aborts {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Sends what the session queued, in order; each chunk's going is news.
async fn write(link: u32, l: &PeerLink, out: &mut mpsc::Receiver<Out>, news: &mpsc::Sender<RelayNews>) -> String {
    while let Some(item) = out.recv().await {
        let sent = match item {
            Out::Control(b) => peer::send(&l.control, &b).await,
            Out::Chunk(b) => {
                let len = b.len();
                let sent = peer::send_owned(&l.chunks, b).await;
                let _ = news.send(RelayNews::Sent(link, if sent.is_ok() { len } else { 0 })).await;
                sent
            }
        };
        if let Err(e) = sent {
            return format!("sending failed: {e}");
        }
    }
    "closed".into()
}

/// Forwards a channel's messages as news, waiting while the session is behind.
fn read(link: u32, dc: std::sync::Arc<dyn DataChannel>, news: mpsc::Sender<RelayNews>, chunks: bool) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(ev) = dc.poll().await {
            if let DataChannelEvent::OnMessage(m) = ev {
                let item = if chunks { RelayNews::Chunk(link, m.data) } else { RelayNews::Control(link, m.data) };
                if news.send(item).await.is_err() {
                    return;
                }
            }
        }
        let _ = news.send(RelayNews::Gone(link, format!("its {} channel closed", if chunks { "chunks" } else { "control" }))).await;
    })
}
