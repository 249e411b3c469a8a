//! The participant engine: joins through signaling, answers the host's WebRTC offer, and pulls
//! chunks into the sans-IO chunk store. With `--save` every chunk is also written to a file.
//! A cursor reads the store in order (hashing as it goes); playback takes that role later.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use color_eyre::eyre::{Result, bail, eyre};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use webrtc::data_channel::{DataChannel, DataChannelEvent};

use crate::core::buffer::{Arrival, ChunkStore, StoreConfig};
use crate::core::rate::Meter;
use crate::headless::{Command, Event};
use crate::net::peer::{self, IceConfig, PeerLink};
use crate::net::signal_client::SignalClient;
use crate::protocol::link::Link;
use crate::protocol::signal::{ClientMsg, ServerMsg, SignalPayload};
use crate::protocol::stream::{self, Manifest, Message, PROTOCOL_VERSION, Role};

/// How a participant runs.
#[derive(Debug, Clone)]
pub struct JoinOptions {
    /// The room link.
    pub link: Link,
    /// Display name.
    pub name: String,
    /// Keep a full copy here.
    pub save: Option<PathBuf>,
    /// Memory bound for chunks.
    pub buffer: u64,
    /// Override for the ICE bind address.
    pub ice_addr: Option<String>,
}

/// Why the engine stopped without an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinEnd {
    /// The user quit.
    Quit,
    /// The host ended the stream.
    StreamEnd(String),
}

enum Incoming {
    Control(BytesMut),
    Chunk(BytesMut),
    Closed(&'static str),
}

fn forward(dc: Arc<dyn DataChannel>, tx: mpsc::UnboundedSender<Incoming>, chunks: bool) {
    tokio::spawn(async move {
        while let Some(ev) = dc.poll().await {
            if let DataChannelEvent::OnMessage(m) = ev {
                let item = if chunks { Incoming::Chunk(m.data) } else { Incoming::Control(m.data) };
                if tx.send(item).is_err() {
                    return;
                }
            }
        }
        let _ = tx.send(Incoming::Closed(if chunks { "chunks channel closed" } else { "control channel closed" }));
    });
}

/// Reads the store in order: hashes, and tells the store where the reader is.
struct Cursor {
    next: u32,
    hasher: Sha256,
    done: bool,
}

/// Joins a room and streams until quit, end of stream, or failure.
pub async fn run(opts: JoinOptions, events: mpsc::UnboundedSender<Event>, mut commands: mpsc::UnboundedReceiver<Command>) -> Result<JoinEnd> {
    let started = Instant::now();
    let link = &opts.link;
    let mut signal = SignalClient::connect(&link.signal_url()).await?;
    signal
        .tx
        .send(ClientMsg::Join { room: link.room.clone(), join_token: link.key.join_token(), name: opts.name.clone() })
        .await
        .map_err(|_| eyre!("signaling connection closed"))?;
    let host = match signal.rx.recv().await {
        Some(ServerMsg::Joined { host, .. }) => host,
        Some(ServerMsg::Error { message, .. }) => bail!("the signaling server refused to let us join: {message}"),
        Some(other) => bail!("unexpected answer from the signaling server: {other:?}"),
        None => bail!("the signaling server closed the connection"),
    };
    let offer = loop {
        match signal.rx.recv().await {
            Some(ServerMsg::Signal { from, payload: SignalPayload::Offer { sdp, mac } }) if from == host => break (sdp, mac),
            Some(ServerMsg::Error { message, .. }) => bail!("signaling: {message}"),
            Some(_) => continue,
            None => bail!("the signaling server closed the connection before the host called"),
        }
    };
    let ice = IceConfig::for_server(link.is_loopback(), opts.ice_addr.as_deref());
    let stx = signal.tx.clone();
    let send = async |payload| stx.send(ClientMsg::Signal { to: host, payload }).await.is_ok();
    let link_up = PeerLink::answer(&ice, &link.key, offer, send).await.map_err(|e| eyre!("cannot connect to the host: {e}"))?;
    let (in_tx, mut incoming) = mpsc::unbounded_channel();
    forward(link_up.control.clone(), in_tx.clone(), false);
    forward(link_up.chunks.clone(), in_tx, true);
    let control = link_up.control.clone();
    peer::send(&control, &stream::encode(&Message::Hello { version: PROTOCOL_VERSION, name: opts.name.clone() })).await?;

    // Hello and manifest come first, on the ordered control channel.
    let manifest = loop {
        match tokio::time::timeout(Duration::from_secs(20), incoming.recv()).await {
            Ok(Some(Incoming::Control(b))) => match stream::decode_from(&b, Role::Host, None)? {
                Message::Hello { version, .. } if version != PROTOCOL_VERSION => {
                    bail!("the host speaks protocol version {version}; this syncy speaks {PROTOCOL_VERSION}")
                }
                Message::Hello { .. } => continue,
                Message::Manifest(m) => break m,
                Message::StreamEnd { reason } => return Ok(JoinEnd::StreamEnd(reason)),
                other => bail!("protocol violation: {other:?} before the manifest"),
            },
            Ok(Some(Incoming::Chunk(_))) => bail!("protocol violation: chunk before the manifest"),
            Ok(Some(Incoming::Closed(why))) => bail!("connection to the host lost: {why}"),
            Ok(None) => bail!("connection to the host lost"),
            Err(_) => bail!("the host sent no manifest within 20 s"),
        }
    };
    let _ = events.send(Event::Manifest {
        name: manifest.name.clone(),
        size: manifest.size,
        chunks: manifest.chunks,
        chunk_size: manifest.chunk_size,
        duration_ms: manifest.duration_ms,
        codecs: manifest.codecs.clone(),
    });
    let save = match &opts.save {
        Some(path) => {
            let f = File::create(path).map_err(|e| eyre!("cannot create {}: {e}", path.display()))?;
            f.set_len(manifest.size)?;
            Some(f)
        }
        None => None,
    };
    let cfg = StoreConfig { capacity: opts.buffer.max(manifest.chunk_size as u64 * 4), ..StoreConfig::default() };
    let mut store = ChunkStore::new(manifest.clone(), cfg);
    let mut cursor = Cursor { next: 0, hasher: Sha256::new(), done: false };
    let mut down = Meter::new(Duration::from_secs(1));
    let mut received: u32 = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut ticks: u64 = 0;
    let mut signal_open = true;
    let mut rtt_ms: Option<u32> = None;
    request_more(&mut store, &control).await?;

    let end = loop {
        tokio::select! {
            item = incoming.recv() => match item {
                Some(Incoming::Chunk(b)) => {
                    let now = Instant::now();
                    down.record(now, b.len() as u64);
                    let Some((index, data)) = stream::decode_chunk(b, &manifest)? else {
                        bail!("protocol violation: only chunks belong on the chunks channel");
                    };
                    let fresh = !store.has(index);
                    if let Some(f) = &save
                        && fresh
                    {
                        f.write_all_at(&data, index as u64 * manifest.chunk_size as u64)?;
                    }
                    if store.handle_chunk(now, index, data)? != Arrival::Duplicate && fresh {
                        received += 1;
                    }
                    advance(&mut store, &mut cursor, &manifest, &events, started);
                    request_more(&mut store, &control).await?;
                }
                Some(Incoming::Control(b)) => match stream::decode_from(&b, Role::Host, Some(&manifest))? {
                    Message::StreamEnd { reason } => break JoinEnd::StreamEnd(reason),
                    Message::Pong { client_us, .. } => {
                        // Round trip on our own clock; the clock-offset filter arrives with playback.
                        let now_us = started.elapsed().as_micros() as u64;
                        if client_us <= now_us {
                            rtt_ms = Some(((now_us - client_us) / 1000) as u32);
                        }
                    }
                    Message::State { .. } | Message::QualityChange { .. } | Message::Hello { .. } => {}
                    other => bail!("protocol violation: unexpected {other:?}"),
                },
                Some(Incoming::Closed(why)) => bail!("connection to the host lost: {why}"),
                None => bail!("connection to the host lost"),
            },
            _ = tick.tick() => {
                let now = Instant::now();
                store.handle_timeout(now);
                request_more(&mut store, &control).await?;
                ticks += 1;
                if ticks % 4 == 0 {
                    let down_bps = down.rate(now) as u64;
                    let _ = events.send(Event::JoinStats {
                        down_bps,
                        buffered_bytes: store.held_bytes(),
                        received_chunks: received,
                        chunks: manifest.chunks,
                        position_ms: 0,
                        playing: false,
                        quality: "high".into(),
                        drift_ms: 0,
                    });
                    let report = Message::Report { position_ms: 0, buffered_bytes: store.held_bytes(), down_bps, buffering: false, rtt_ms, seq: 0, drift_ms: None };
                    peer::send(&control, &stream::encode(&report)).await?;
                    let ping = Message::Ping { client_us: started.elapsed().as_micros() as u64 };
                    peer::send(&control, &stream::encode(&ping)).await?;
                }
            }
            cmd = commands.recv() => match cmd {
                Some(Command::Quit) | None => break JoinEnd::Quit,
                Some(other) => {
                    let _ = events.send(Event::Error { message: format!("{other:?}: playback control is not implemented yet") });
                }
            },
            msg = signal.rx.recv(), if signal_open => {
                // Signaling is only needed to set up; once connected, its loss is not fatal.
                match msg {
                    Some(ServerMsg::Error { message, .. }) => tracing::info!("signaling: {message}"),
                    Some(_) => {}
                    None => {
                        tracing::info!("signaling connection closed; the WebRTC link carries on");
                        signal_open = false;
                    }
                }
            }
        }
    };
    if let JoinEnd::StreamEnd(reason) = &end {
        let _ = events.send(Event::StreamEnd { reason: reason.clone() });
    }
    link_up.close().await;
    Ok(end)
}

/// Sends whatever the store wants to ask for.
async fn request_more(store: &mut ChunkStore, control: &Arc<dyn DataChannel>) -> Result<()> {
    while let Some(req) = store.poll_request(Instant::now()) {
        let msg = Message::Request { chunks: req.chunks, priority: req.priority };
        peer::send(control, &stream::encode(&msg)).await?;
    }
    Ok(())
}

/// Moves the in-order cursor over held chunks; reports completion with the file's sha256.
fn advance(store: &mut ChunkStore, cursor: &mut Cursor, manifest: &Manifest, events: &mpsc::UnboundedSender<Event>, started: Instant) {
    while let Some(data) = store.get(cursor.next) {
        cursor.hasher.update(data);
        cursor.next += 1;
    }
    store.set_read_position(cursor.next);
    if cursor.next < manifest.chunks {
        store.want(cursor.next);
    } else if !cursor.done {
        cursor.done = true;
        let sha256 = hex::encode(std::mem::take(&mut cursor.hasher).finalize());
        let _ = events.send(Event::Complete { sha256, size: manifest.size, seconds: started.elapsed().as_secs_f64() });
    }
}
