//! A WebRTC peer link: one `RTCPeerConnection` with a `control` channel (reliable, ordered) and a
//! `chunks` channel (reliable, unordered). The host offers, the participant answers; SDPs travel
//! through the signaling server with an HMAC under the room key, checked before use.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::peer_connection::configuration::setting_engine::SctpMaxMessageSize;
use rtc::peer_connection::configuration::{RTCIceServer, RTCIceTransportPolicy};
use tokio::sync::mpsc;
use webrtc::data_channel::{DataChannel, DataChannelEvent, RTCDataChannelInit};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceConnectionState, RTCIceGatheringState,
    RTCPeerConnectionState, RTCSessionDescription, SettingEngineBuilder,
};

use super::diagnose::Facts;
use super::pc_guard::ClosingPc;
use crate::protocol::auth::{RoomKey, SetupAuth};
use crate::protocol::guest::GuestKey;
use crate::protocol::identity::{HostId, HostKey};
use crate::protocol::signal::SignalPayload;

/// Label of the control channel.
pub const CONTROL: &str = "control";
/// Label of the chunk channel.
pub const CHUNKS: &str = "chunks";
/// Per-channel send buffer: `send` waits while more than this is unacknowledged (backpressure).
pub const SEND_BUFFER: usize = 1024 * 1024;
/// SCTP receive window. Larger than webrtc-rs's 1 MiB default so a receiver busy for a moment
/// (hashing, writing) does not close the window and stall the sender.
pub const RECEIVE_WINDOW: u32 = 4 * 1024 * 1024;
/// Largest message we accept and advertise (SCTP's ceiling in webrtc-rs).
pub const MAX_MESSAGE: u32 = SctpMaxMessageSize::MAX_MESSAGE_SIZE;
/// No answer to ICE checks for this long: the path is disconnected (it may come back).
pub const ICE_DISCONNECTED: Duration = Duration::from_secs(4);
/// No answer for this long: the path failed; the link closes.
pub const ICE_FAILED: Duration = Duration::from_secs(10);
/// ICE keepalive interval.
pub const ICE_KEEPALIVE: Duration = Duration::from_secs(1);
/// How long ICE waits for a direct pair before taking one through a STUN-learned address.
pub const SRFLX_WAIT: Duration = Duration::from_millis(100);
/// The same for a peer-reflexive address (what a NAT shows the other side).
pub const PRFLX_WAIT: Duration = Duration::from_millis(250);
/// The same for a TURN relay.
pub const RELAY_WAIT: Duration = Duration::from_millis(600);
/// How long connection set-up may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long ICE gathering may take before the SDP goes out with what was gathered so far: a
/// STUN or TURN server that never answers costs this, not its transaction's 40 s.
pub const GATHER_WAIT: Duration = Duration::from_secs(1);
/// The same when only relayed paths may be used (nothing works without the TURN allocation,
/// which takes two round trips, more over TCP or TLS).
pub const GATHER_WAIT_RELAY: Duration = Duration::from_secs(3);
/// After ICE found a path, how long DTLS, SCTP and the data channels may take to come up over
/// it before the attempt is given up as stalled (and the participant tries again).
/// rtc-dtls retransmits a lost flight each second and gives up after about 8: past that the
/// attempt is over anyway.
pub const STALL_AFTER: Duration = Duration::from_secs(8);

/// Peer-link failures.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// WebRTC stack error.
    #[error("WebRTC: {0}")]
    Rtc(#[from] webrtc::error::Error),
    /// The answer's MAC or signature is wrong: someone without the room key made it, or
    /// someone other than the key that joined (riding on another's approval).
    #[error("the peer's session description is not signed with the room key and the key it joined with; refusing it")]
    BadMac,
    /// The offer is not signed by the host key the link names (for this participant and set-up).
    #[error("the offer is not signed by the host this link names (someone else posing as the host?); refusing it")]
    NotTheHost,
    /// Unexpected signaling payload.
    #[error("unexpected signaling message: {0}")]
    Unexpected(&'static str),
    /// The other side went away during set-up.
    #[error("the peer went away during connection set-up")]
    Gone,
    /// Set-up took too long.
    #[error("connection set-up timed out after {0:?}")]
    Timeout(Duration),
    /// The connection failed.
    #[error("the WebRTC connection failed")]
    Failed,
    /// No candidate pair worked: why, and what to do.
    #[error("{}", .0.message)]
    NoPath(super::diagnose::Diagnosis),
    /// ICE found a path, but DTLS/SCTP did not come up over it (worth another try).
    #[error("a path to the host was found, but the encrypted connection over it (DTLS/SCTP) did not come up")]
    Stalled,
}

/// NAT traversal: STUN and TURN servers, and whether only relayed paths may be used.
#[derive(Debug, Clone, Default)]
pub struct NatOptions {
    /// STUN server URLs (`stun:HOST:PORT`): learn this side's public address.
    pub stun: Vec<String>,
    /// TURN server URLs (`turn:HOST:PORT?transport=udp`): relay when no direct path works.
    pub turn: Vec<String>,
    /// TURN user name.
    pub turn_user: String,
    /// TURN password.
    pub turn_pass: crate::secret::Secret,
    /// Use relayed candidates only (hides both sides' addresses from each other).
    pub relay_only: bool,
}

impl NatOptions {
    fn ice_servers(&self) -> Vec<RTCIceServer> {
        let mut servers = Vec::new();
        if !self.stun.is_empty() {
            servers.push(RTCIceServer { urls: self.stun.clone(), ..Default::default() });
        }
        if !self.turn.is_empty() {
            servers.push(RTCIceServer { urls: self.turn.clone(), username: self.turn_user.clone(), credential: self.turn_pass.expose().to_string() });
        }
        servers
    }
}

/// Where ICE binds and which servers it uses.
#[derive(Debug, Clone)]
pub struct IceConfig {
    /// UDP addresses to bind (`127.0.0.1:0` under the loopback rule).
    pub udp_addrs: Vec<String>,
    /// STUN/TURN.
    pub nat: NatOptions,
}

/// Who can reach a room, for the loopback rule (DESIGN §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// The room's link names this loopback address: only this machine can join.
    Loopback(std::net::IpAddr),
    /// Other machines can join.
    Network,
}

impl Reach {
    /// Who can reach a room whose link names `host`.
    pub fn of_host(host: &str) -> Reach {
        if !crate::protocol::link::is_loopback_host(host) {
            return Reach::Network;
        }
        Reach::Loopback(host.parse().unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)))
    }
}

impl IceConfig {
    /// The loopback rule (DESIGN §3): a room only this machine can reach binds ICE to loopback
    /// only, so a local room never touches another interface. Any other room binds every
    /// interface of each family this machine has, but not loopback: a participant on the
    /// host's machine reaches the host's LAN address from its own (loopback or LAN) socket,
    /// while a loopback socket would send STUN, TURN and checks towards other machines that
    /// the kernel refuses (EINVAL), on every packet. An explicit `--ice-addr` wins.
    pub fn new(reach: Reach, ice_addr: Option<&str>, nat: &NatOptions) -> Self {
        let udp_addrs = match (ice_addr, reach) {
            (Some(a), _) => vec![bind_addr(a)],
            (None, Reach::Loopback(ip)) => vec![std::net::SocketAddr::new(ip, 0).to_string()],
            (None, Reach::Network) => network_binds(),
        };
        IceConfig { udp_addrs, nat: nat.clone() }
    }
}

/// `--ice-addr` as a bind address: `IP`, `IP:PORT`, `[V6]:PORT` or a bare IPv6 address.
fn bind_addr(a: &str) -> String {
    if let Ok(ip) = a.parse::<std::net::IpAddr>() {
        return std::net::SocketAddr::new(ip, 0).to_string();
    }
    if a.parse::<std::net::SocketAddr>().is_ok() { a.to_string() } else { format!("{a}:0") }
}

/// Every interface: a wildcard per address family this machine has (webrtc-rs expands each into
/// one socket per interface, skipping loopback).
fn network_binds() -> Vec<String> {
    let addrs = super::addrs::reachable();
    let (v4, v6) = (addrs.iter().any(|a| a.ip.is_ipv4()), addrs.iter().any(|a| a.ip.is_ipv6()));
    let mut binds = Vec::new();
    // A machine with no address at all still binds IPv4, for a relayed path.
    if v4 || !v6 {
        binds.push("0.0.0.0:0".to_string());
    }
    if v6 {
        binds.push("[::]:0".to_string());
    }
    binds
}

#[path = "peer_relay.rs"]
mod relay;

/// Connection-level events.
enum PcEvent {
    GatheringComplete,
    State(RTCPeerConnectionState),
    IceConnected,
    Channel(Arc<dyn DataChannel>),
}

struct Handler {
    tx: mpsc::UnboundedSender<PcEvent>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.tx.send(PcEvent::GatheringComplete);
        }
    }
    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.tx.send(PcEvent::State(state));
    }
    async fn on_ice_connection_state_change(&self, state: RTCIceConnectionState) {
        if matches!(state, RTCIceConnectionState::Connected | RTCIceConnectionState::Completed) {
            let _ = self.tx.send(PcEvent::IceConnected);
        }
    }
    async fn on_data_channel(&self, dc: Arc<dyn DataChannel>) {
        // Never block here: the driver waits for this callback.
        let _ = self.tx.send(PcEvent::Channel(dc));
    }
}

/// What the host signs and checks one set-up with: its own key for the offer, the room key
/// and the participant's key for its answer.
pub struct OfferAuth<'a> {
    pub host: &'a HostKey,
    pub key: &'a RoomKey,
    pub setup: SetupAuth,
}

/// What a participant checks the host's offer with, and MACs and signs its answer with.
pub struct AnswerAuth<'a> {
    pub host: &'a HostId,
    pub key: &'a RoomKey,
    /// Its own key in this room (the one `setup` names).
    pub guest: &'a GuestKey,
    pub setup: SetupAuth,
}

/// An established link.
pub struct PeerLink {
    pc: ClosingPc,
    /// Reliable ordered channel for everything but chunks.
    pub control: Arc<dyn DataChannel>,
    /// Reliable unordered channel for chunks.
    pub chunks: Arc<dyn DataChannel>,
    /// What came on `control` before it opened (see `wait_open`), oldest first; the reader
    /// takes these before polling the channel.
    pub early_control: Vec<BytesMut>,
    /// Set when gathering ran out of time: which servers did not answer (for a warning).
    pub gathering_warning: Option<String>,
    events: tokio::sync::Mutex<mpsc::UnboundedReceiver<PcEvent>>,
}

/// A new peer connection, closed when dropped on any path (see `pc_guard`).
async fn build(ice: &IceConfig) -> Result<(ClosingPc, mpsc::UnboundedReceiver<PcEvent>), LinkError> {
    let (tx, rx) = mpsc::unbounded_channel();
    let settings = SettingEngineBuilder::new()
        // No mDNS: it would send multicast to the LAN, and our candidates are plain IPs.
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        .with_sctp_max_message_size(SctpMaxMessageSize::Bounded(MAX_MESSAGE))
        .with_sctp_max_receive_buffer_size(RECEIVE_WINDOW)
        // A dead path is given up after ICE_FAILED (25 s by default), so a participant gets
        // back in quickly (it reconnects) and the host stops sending into the void.
        .with_ice_timeouts(Some(ICE_DISCONNECTED), Some(ICE_FAILED), Some(ICE_KEEPALIVE))
        // How long ICE holds out for a better pair before taking one through NAT or a relay.
        // webrtc-rs's defaults (0.5 s, 1 s, 2 s) cost a relayed room 2.6 s to its first frame
        // (`syncy bench --suite networks`); a direct pair that has not answered within these
        // is on a path slower than the relay anyway.
        .with_srflx_acceptance_min_wait(Some(SRFLX_WAIT))
        .with_prflx_acceptance_min_wait(Some(PRFLX_WAIT))
        .with_relay_acceptance_min_wait(Some(RELAY_WAIT))
        .build();
    let policy = if ice.nat.relay_only { RTCIceTransportPolicy::Relay } else { RTCIceTransportPolicy::All };
    let configuration = RTCConfigurationBuilder::new().with_ice_servers(ice.nat.ice_servers()).with_ice_transport_policy(policy).build();
    let pc = PeerConnectionBuilder::new()
        .with_configuration(configuration)
        .with_setting_engine(settings)
        .with_handler(Arc::new(Handler { tx }))
        .with_runtime(super::runtime::runtime())
        .with_udp_addrs(ice.udp_addrs.clone())
        .with_data_channel_send_buffer_limit(SEND_BUFFER)
        .build()
        .await?;
    Ok((ClosingPc::new(Arc::new(pc)), rx))
}

/// Waits for ICE gathering to complete, at most `wait`; false when it ran out of time.
async fn wait_gathered(events: &mut mpsc::UnboundedReceiver<PcEvent>, stash: &mut Vec<PcEvent>, wait: Duration) -> Result<bool, LinkError> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Err(_) => return Ok(false),
            Ok(None) => return Err(LinkError::Gone),
            Ok(Some(PcEvent::GatheringComplete)) => return Ok(true),
            Ok(Some(PcEvent::State(RTCPeerConnectionState::Failed))) => return Err(LinkError::Failed),
            Ok(Some(other)) => stash.push(other),
        }
    }
}

/// A local SDP ready to send: the SDP (candidates included), its MAC, the candidates in it,
/// and a warning when gathering ran out of time.
struct LocalSdp {
    sdp: String,
    gathered: super::diagnose::Gathered,
    warning: Option<String>,
}

/// Waits for ICE gathering (bounded), then returns the local SDP.
async fn gathered_local_sdp(
    pc: &Arc<dyn PeerConnection>,
    events: &mut mpsc::UnboundedReceiver<PcEvent>,
    stash: &mut Vec<PcEvent>,
    nat: &NatOptions,
) -> Result<LocalSdp, LinkError> {
    let local = async || Ok::<_, LinkError>(pc.local_description().await.ok_or(LinkError::Unexpected("no local description"))?.sdp);
    let mut wait = if nat.relay_only { GATHER_WAIT_RELAY } else { GATHER_WAIT };
    let mut complete = wait_gathered(events, stash, wait).await?;
    let mut sdp = local().await?;
    let mut gathered = super::diagnose::Gathered::from_sdp(&sdp);
    if !complete && wait < GATHER_WAIT_RELAY && wait_longer_for_relay(nat, &gathered) {
        complete = wait_gathered(events, stash, GATHER_WAIT_RELAY - wait).await?;
        wait = GATHER_WAIT_RELAY;
        sdp = local().await?;
        gathered = super::diagnose::Gathered::from_sdp(&sdp);
    }
    let warning = (!complete).then(|| unanswered(nat, &gathered, wait));
    if let Some(w) = &warning {
        tracing::warn!("{w}");
    }
    Ok(LocalSdp { sdp, gathered, warning })
}

/// The SDP goes out once (no trickle ICE), so a relay still being allocated would be lost: a
/// TURN server over TCP or TLS takes a few round trips more, and where UDP is blocked (the STUN
/// server silent) a relay is the only way out. Then gathering waits for it, to
/// GATHER_WAIT_RELAY.
fn wait_longer_for_relay(nat: &NatOptions, got: &super::diagnose::Gathered) -> bool {
    let stream_turn = nat.turn.iter().any(|u| super::path::turn_transport(u) != "udp");
    let udp_silent = !nat.stun.is_empty() && got.srflx.is_empty();
    !nat.turn.is_empty() && got.relay.is_empty() && (stream_turn || udp_silent)
}

/// Which configured servers gave nothing within `wait`.
fn unanswered(nat: &NatOptions, got: &super::diagnose::Gathered, wait: Duration) -> String {
    let mut silent = Vec::new();
    // Relay-only gathering asks no STUN server.
    if got.srflx.is_empty() && !nat.relay_only {
        silent.extend(nat.stun.iter().cloned());
    }
    if got.relay.is_empty() {
        silent.extend(nat.turn.iter().cloned());
    }
    if silent.is_empty() {
        silent.push("a STUN/TURN server".into());
    }
    format!("{} did not answer within {} ms; connecting without it", silent.join(", "), wait.as_millis())
}

/// Gathers candidates with `nat` as a participant would, without connecting anywhere (for
/// `syncy doctor`): what this machine offers, and whether gathering finished within `wait`.
pub async fn gather(nat: &NatOptions, wait: Duration) -> Result<(super::diagnose::Gathered, bool), LinkError> {
    let ice = IceConfig::new(Reach::Network, None, nat);
    let (pc, mut events) = build(&ice).await?;
    let result = async {
        pc.create_data_channel(CONTROL, None).await?;
        let offer = pc.create_offer(None).await?;
        pc.set_local_description(offer).await?;
        let complete = wait_gathered(&mut events, &mut Vec::new(), wait).await?;
        let sdp = pc.local_description().await.ok_or(LinkError::Unexpected("no local description"))?.sdp;
        Ok((super::diagnose::Gathered::from_sdp(&sdp), complete))
    }
    .await;
    let _ = pc.close().await;
    result
}

/// A participant's answer as it came.
struct Answer {
    sdp: String,
    mac: String,
    sig: String,
}

/// The participant's answer, past any candidates: they are in the SDP.
async fn answer_of(answers: &mut mpsc::Receiver<SignalPayload>) -> Result<Answer, LinkError> {
    loop {
        let unexpected = match answers.recv().await.ok_or(LinkError::Gone)? {
            SignalPayload::Answer { sdp, mac, sig } => return Ok(Answer { sdp, mac, sig }),
            SignalPayload::Ice { .. } => continue,
            SignalPayload::Offer { .. } => "offer sent to the offerer",
            SignalPayload::Denied { .. } => "a refusal sent to the host",
            SignalPayload::Fallback { .. } => "a fallback address sent to the host",
        };
        return Err(LinkError::Unexpected(unexpected));
    }
}

/// Waits for a channel the host created to open, and returns what the peer sent on it
/// before the open event. On a TURN-relayed link webrtc-rs can hand over the first messages
/// before `OnOpen`: its driver takes relayed packets in and drains their data in the same
/// pass, while the open (from the DCEP ACK in the same packet) waits for the next pass. The
/// participant's hello travels in that first packet; dropping it here cost every relayed
/// participant its hello under loss, and the host then cut it for "messages before hello".
async fn wait_open(dc: &Arc<dyn DataChannel>) -> Result<Vec<BytesMut>, LinkError> {
    open_events(|| dc.poll()).await
}

/// `wait_open` over any source of channel events.
async fn open_events<F: Future<Output = Option<DataChannelEvent>>>(mut next: impl FnMut() -> F) -> Result<Vec<BytesMut>, LinkError> {
    let mut early = Vec::new();
    loop {
        match next().await {
            Some(DataChannelEvent::OnOpen) => return Ok(early),
            Some(DataChannelEvent::OnMessage(m)) if early.len() < MAX_BEFORE_OPEN => early.push(m.data),
            Some(DataChannelEvent::OnMessage(_)) => {
                return Err(LinkError::Unexpected("a flood of messages before the channel opened"));
            }
            Some(DataChannelEvent::OnClose) | None => return Err(LinkError::Gone),
            Some(_) => {}
        }
    }
}

/// The participant's half of set-up: answer, then wait for the host's two channels.
async fn answer_on(
    pc: &Arc<dyn PeerConnection>,
    events: &mut mpsc::UnboundedReceiver<PcEvent>,
    auth: &AnswerAuth<'_>,
    offer: String,
    send: impl AsyncFnOnce(SignalPayload) -> bool,
    nat: &NatOptions,
    facts: &mut Facts,
) -> Result<(Arc<dyn DataChannel>, Arc<dyn DataChannel>, Option<String>), LinkError> {
    pc.set_remote_description(RTCSessionDescription::offer(offer)?).await?;
    let answer = pc.create_answer(None).await?;
    pc.set_local_description(answer).await?;
    let mut stash = Vec::new();
    let LocalSdp { sdp, gathered, warning } = gathered_local_sdp(pc, events, &mut stash, nat).await?;
    let (mac, sig) = auth.setup.answer_auth(auth.key, auth.guest, &sdp);
    facts.local = gathered;
    tracing::debug!("candidates: ours {:?}, the host's {:?}", facts.local, facts.remote);
    if !send(SignalPayload::Answer { sdp, mac, sig }).await {
        return Err(LinkError::Gone);
    }
    let (mut control, mut chunks) = (None, None);
    let mut pending = stash.into_iter();
    // Once ICE has a path, the rest must follow soon, or the attempt is given up as stalled.
    let mut stall_at: Option<tokio::time::Instant> = None;
    while control.is_none() || chunks.is_none() {
        let ev = match (pending.next(), stall_at) {
            (Some(ev), _) => ev,
            (None, None) => events.recv().await.ok_or(LinkError::Gone)?,
            (None, Some(at)) => tokio::time::timeout_at(at, events.recv()).await.map_err(|_| LinkError::Stalled)?.ok_or(LinkError::Gone)?,
        };
        match ev {
            PcEvent::IceConnected => {
                facts.ice_connected = true;
                stall_at.get_or_insert(tokio::time::Instant::now() + STALL_AFTER);
            }
            PcEvent::Channel(dc) => match dc.label().await?.as_str() {
                CONTROL => control = Some(dc),
                CHUNKS => chunks = Some(dc),
                other => tracing::warn!("ignoring unknown data channel {other:?}"),
            },
            PcEvent::State(RTCPeerConnectionState::Failed) if facts.ice_connected => return Err(LinkError::Stalled),
            PcEvent::State(RTCPeerConnectionState::Failed) => return Err(LinkError::NoPath(super::diagnose::why_failed(facts))),
            _ => {}
        }
    }
    Ok((control.expect("loop"), chunks.expect("loop"), warning))
}

/// What a set-up brings up: both channels, what came on `control` before it opened, and any
/// gathering warning.
struct Channels {
    control: Arc<dyn DataChannel>,
    chunks: Arc<dyn DataChannel>,
    early_control: Vec<BytesMut>,
    warning: Option<String>,
}

/// The host's side of a set-up on `pc`: offer, the participant's answer, both channels open.
async fn offer_on(
    pc: &ClosingPc,
    events: &mut mpsc::UnboundedReceiver<PcEvent>,
    auth: &OfferAuth<'_>,
    send: impl AsyncFnOnce(SignalPayload) -> bool,
    answers: &mut mpsc::Receiver<SignalPayload>,
    nat: &NatOptions,
) -> Result<Channels, LinkError> {
    let control = pc.create_data_channel(CONTROL, Some(RTCDataChannelInit { ordered: true, ..Default::default() })).await?;
    let chunks = pc.create_data_channel(CHUNKS, Some(RTCDataChannelInit { ordered: false, ..Default::default() })).await?;
    let offer = pc.create_offer(None).await?;
    pc.set_local_description(offer).await?;
    let mut stash = Vec::new();
    let LocalSdp { sdp, warning, .. } = gathered_local_sdp(pc, events, &mut stash, nat).await?;
    let sig = auth.setup.sign_offer(auth.host, &sdp);
    if !send(SignalPayload::Offer { sdp, sig }).await {
        return Err(LinkError::Gone);
    }
    let Answer { sdp, mac, sig } = answer_of(answers).await?;
    if !auth.setup.verify_answer(auth.key, &sdp, &mac, &sig) {
        return Err(LinkError::BadMac);
    }
    pc.set_remote_description(RTCSessionDescription::answer(sdp)?).await?;
    let early_control = wait_open(&control).await?;
    if !wait_open(&chunks).await?.is_empty() {
        return Err(LinkError::Unexpected("a message from the participant on the chunks channel"));
    }
    Ok(Channels { control, chunks, early_control, warning })
}

/// Messages kept from before a channel's open event; an honest peer sends a hello and a few
/// requests in that window.
const MAX_BEFORE_OPEN: usize = 64;

impl PeerLink {
    /// Host side: offers, waits for the answer from `answers`, and waits for both channels.
    /// `send` delivers a payload to the participant through signaling.
    pub async fn offer(
        ice: &IceConfig,
        auth: &OfferAuth<'_>,
        send: impl AsyncFnOnce(SignalPayload) -> bool,
        answers: &mut mpsc::Receiver<SignalPayload>,
    ) -> Result<PeerLink, LinkError> {
        tokio::time::timeout(CONNECT_TIMEOUT, async {
            // Dropped with the future when the timeout fires or the task is aborted: closed.
            let (pc, mut events) = build(ice).await?;
            match offer_on(&pc, &mut events, auth, send, answers, &ice.nat).await {
                Ok(Channels { control, chunks, early_control, warning }) => {
                    Ok(PeerLink { pc, control, chunks, early_control, gathering_warning: warning, events: events.into() })
                }
                Err(e) => {
                    let _ = pc.close().await;
                    Err(e)
                }
            }
        })
        .await
        .map_err(|_| LinkError::Timeout(CONNECT_TIMEOUT))?
    }

    /// Participant side: answers the host's offer and waits for both channels. A failure says
    /// why in words a user can act on (`LinkError::NoPath`), or that the attempt stalled after
    /// ICE found a path (`LinkError::Stalled`: worth another try).
    pub async fn answer(
        ice: &IceConfig,
        auth: &AnswerAuth<'_>,
        offer: (String, String),
        send: impl AsyncFnOnce(SignalPayload) -> bool,
    ) -> Result<PeerLink, LinkError> {
        if !auth.setup.verify_offer(auth.host, &offer.0, &offer.1) {
            return Err(LinkError::NotTheHost);
        }
        let mut facts = Facts {
            remote: super::diagnose::Gathered::from_sdp(&offer.0),
            stun: !ice.nat.stun.is_empty(),
            turn: !ice.nat.turn.is_empty(),
            turn_stream: ice.nat.turn.iter().any(|u| super::path::turn_transport(u) != "udp"),
            ..Default::default()
        };
        let (pc, mut events) = build(ice).await?;
        let result = match tokio::time::timeout(CONNECT_TIMEOUT, answer_on(&pc, &mut events, auth, offer.0, send, &ice.nat, &mut facts)).await {
            Ok(r) => r,
            Err(_) if facts.ice_connected => Err(LinkError::Stalled),
            Err(_) => Err(LinkError::NoPath(super::diagnose::why_failed(&facts))),
        };
        match result {
            Ok((control, chunks, gathering_warning)) => {
                Ok(PeerLink { pc, control, chunks, early_control: Vec::new(), gathering_warning, events: events.into() })
            }
            Err(e) => {
                let _ = pc.close().await;
                Err(e)
            }
        }
    }

    /// The path the link takes now (ICE's selected candidate pair), once ICE has chosen one.
    pub async fn path(&self) -> Option<super::path::Path> {
        let ice = self.pc.sctp().await?.transport().ice_transport();
        let pair = ice.get_selected_candidate_pair().await.ok()??;
        let mut local = candidate(pair.local());
        if local.kind == "relay" {
            local.relay_protocol = self.relay_protocol(&pair.local().id).await;
        }
        Some(super::path::Path::of_pair(local, candidate(pair.remote())))
    }

    /// How a local relay candidate reaches its TURN server, from the URL the stats keep for it
    /// (webrtc-rs's candidates carry neither the URL nor the protocol).
    async fn relay_protocol(&self, candidate_id: &str) -> Option<String> {
        use rtc::statistics::StatsSelector;
        use rtc::statistics::report::RTCStatsReportEntry as E;
        let report = self.pc.get_stats(std::time::Instant::now(), StatsSelector::None).await;
        let url = match report.get(&format!("RTCLocalIceCandidate_{candidate_id}"))? {
            E::LocalCandidate(c) => c.url.clone(),
            _ => return None,
        };
        Some(super::path::turn_transport(&url).to_string())
    }

    /// The largest message the remote side accepts.
    pub async fn remote_max_message(&self) -> Option<u32> {
        let sctp = self.pc.sctp().await?;
        sctp.max_message_size().await.ok()
    }

    /// Resolves when the connection fails or closes.
    pub async fn closed(&self) {
        let mut events = self.events.lock().await;
        while let Some(ev) = events.recv().await {
            // `Disconnected` can recover; `Failed` and `Closed` cannot.
            if let PcEvent::State(RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed) = ev {
                return;
            }
        }
    }

    /// Closes the connection.
    pub async fn close(&self) {
        let _ = self.pc.close().await;
    }
}

/// A candidate as the path reports it. webrtc-rs never fills in `relay_protocol`; `path`
/// reads it for the local relay candidate from the stats.
fn candidate(c: &rtc::peer_connection::transport::RTCIceCandidate) -> super::path::Candidate {
    super::path::Candidate { kind: c.typ.to_string(), address: c.address.clone(), port: c.port, protocol: c.protocol.to_string(), relay_protocol: None }
}

/// Sends one message on a channel, waiting while its send buffer is full.
pub async fn send(dc: &Arc<dyn DataChannel>, bytes: &[u8]) -> Result<(), LinkError> {
    send_owned(dc, BytesMut::from(bytes)).await
}

/// Like [`send`], without copying the buffer.
pub async fn send_owned(dc: &Arc<dyn DataChannel>, bytes: BytesMut) -> Result<(), LinkError> {
    dc.send(bytes).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    #[test]
    fn the_loopback_rule() {
        let nat = NatOptions::default();
        assert_eq!(IceConfig::new(Reach::of_host("127.0.0.1"), None, &nat).udp_addrs, vec!["127.0.0.1:0"]);
        assert_eq!(IceConfig::new(Reach::of_host("localhost"), None, &nat).udp_addrs, vec!["127.0.0.1:0"]);
        assert_eq!(IceConfig::new(Reach::of_host("::1"), None, &nat).udp_addrs, vec!["[::1]:0"]);
        // A room others can reach: every interface (wildcards), never a loopback socket.
        for host in ["10.99.0.1", "watch.example.org"] {
            let binds = IceConfig::new(Reach::of_host(host), None, &nat).udp_addrs;
            assert!(binds.iter().all(|a| a == "0.0.0.0:0" || a == "[::]:0") && !binds.is_empty(), "{binds:?}");
        }
        // --ice-addr wins, in each of its spellings.
        for (given, bound) in [("10.1.2.3", "10.1.2.3:0"), ("10.1.2.3:5000", "10.1.2.3:5000"), ("fd99::1", "[fd99::1]:0"), ("[fd99::1]:7", "[fd99::1]:7")] {
            assert_eq!(IceConfig::new(Reach::Network, Some(given), &nat).udp_addrs, vec![bound]);
        }
    }

    use rtc::data_channel::RTCDataChannelMessage;

    use super::*;

    fn msg(b: &[u8]) -> DataChannelEvent {
        DataChannelEvent::OnMessage(RTCDataChannelMessage { is_string: false, data: BytesMut::from(b) })
    }

    async fn run(events: Vec<DataChannelEvent>) -> Result<Vec<BytesMut>, LinkError> {
        let mut q: VecDeque<_> = events.into();
        open_events(|| std::future::ready(q.pop_front())).await
    }

    #[tokio::test]
    async fn messages_before_the_open_event_are_kept_in_order() {
        // The relayed-link case: the hello and a request come before OnOpen.
        let early = run(vec![msg(b"hello"), msg(b"request"), DataChannelEvent::OnOpen, msg(b"later")]).await.unwrap();
        assert_eq!(early, vec![BytesMut::from(&b"hello"[..]), BytesMut::from(&b"request"[..])]);
        assert!(run(vec![DataChannelEvent::OnOpen]).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_close_or_a_flood_before_the_open_event_fails() {
        assert!(matches!(run(vec![msg(b"hello"), DataChannelEvent::OnClose]).await, Err(LinkError::Gone)));
        assert!(matches!(run(vec![]).await, Err(LinkError::Gone)));
        let flood = (0..=MAX_BEFORE_OPEN).map(|_| msg(b"x")).chain([DataChannelEvent::OnOpen]).collect();
        assert!(matches!(run(flood).await, Err(LinkError::Unexpected(_))));
    }
}
