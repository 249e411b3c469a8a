use crate::peer_connection::driver::PeerConnectionDriverEvent;
use crate::peer_connection::transport::{TcpReadResult, is_retryable_socket_recv_error};
use crate::runtime::{AsyncTcpListener, AsyncTcpStream, Runtime, Sender};
use bytes::BytesMut;
use futures::FutureExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use log::{error, trace};
use rtc::ice::candidate::Candidate;
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, RTCIceCandidate, RTCIceCandidateInit,
};
use rtc::shared::FourTuple;
use rtc::shared::error::Result;
use rtc::shared::tcp_framing::{TcpFrameDecoder, frame_packet};
use rtc::shared::turn_framing::TurnStreamDecoder;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

const TCP_READ_BUF_LEN: usize = 4096;

pub(crate) type TcpAcceptResult = (
    SocketAddr,
    io::Result<(Arc<dyn AsyncTcpStream>, SocketAddr)>,
);

/// syncy patch: how a stream is framed. ICE-TCP streams carry RFC 4571 length prefixes; a
/// stream to a TURN server carries STUN and ChannelData messages back to back, each
/// self-delimiting (RFC 8656 §12.5), and is written as it is.
enum StreamDecoder {
    Ice(TcpFrameDecoder),
    Turn(TurnStreamDecoder),
}

pub(crate) struct RTCTcpTransport {
    listeners: HashMap<SocketAddr, Arc<dyn AsyncTcpListener>>,
    streams: HashMap<FourTuple, Arc<dyn AsyncTcpStream>>,
    decoders: HashMap<FourTuple, StreamDecoder>,
    /// syncy patch: every TURN stream ever registered here, open or closed since.
    turn_streams: std::collections::HashSet<FourTuple>,
    /// syncy patch: see [`take_closed_turn_streams`](Self::take_closed_turn_streams).
    closed_turn_streams: Vec<FourTuple>,
    pub(crate) accept_futures: FuturesUnordered<BoxFuture<'static, TcpAcceptResult>>,
    pub(crate) read_futures: FuturesUnordered<BoxFuture<'static, TcpReadResult>>,
}

impl RTCTcpTransport {
    pub(crate) fn new(tcp_listeners: HashMap<SocketAddr, Arc<dyn AsyncTcpListener>>) -> Self {
        let accept_futures = FuturesUnordered::new();
        for (local_addr, listener) in &tcp_listeners {
            let local_addr = *local_addr;
            let listener = listener.clone();
            accept_futures.push(
                async move {
                    match listener.accept().await {
                        Ok((stream, peer_addr)) => (local_addr, Ok((stream, peer_addr))),
                        Err(err) => (local_addr, Err(err)),
                    }
                }
                .boxed(),
            );
        }

        Self {
            listeners: tcp_listeners,
            streams: HashMap::new(),
            decoders: HashMap::new(),
            turn_streams: std::collections::HashSet::new(),
            closed_turn_streams: Vec::new(),
            accept_futures,
            read_futures: FuturesUnordered::new(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.listeners.is_empty()
    }

    pub(crate) fn listener_count(&self) -> usize {
        self.listeners.len()
    }

    pub(crate) fn has_stream_for(&self, four_tuple: &FourTuple) -> bool {
        self.streams.contains_key(four_tuple)
    }

    /// The stream for `four_tuple`, and the four-tuple it is registered under. syncy patch: the
    /// fallback by peer address is for ICE-TCP streams only; a TURN stream is its own four-tuple.
    fn find_stream(&self, four_tuple: &FourTuple) -> Option<(FourTuple, Arc<dyn AsyncTcpStream>)> {
        if let Some(s) = self.streams.get(four_tuple) {
            return Some((*four_tuple, s.clone()));
        }
        self.streams
            .iter()
            .filter(|(key, _)| matches!(self.decoders.get(key), Some(StreamDecoder::Ice(_))))
            .find(|(_, stream)| stream.peer_addr().is_ok_and(|peer| peer == four_tuple.peer_addr))
            .map(|(key, s)| (*key, s.clone()))
    }

    /// syncy patch: TURN streams that closed since the last call (EOF, a read error, bytes that
    /// are not TURN), for the driver to tell the relayer.
    pub(crate) fn take_closed_turn_streams(&mut self) -> Vec<FourTuple> {
        std::mem::take(&mut self.closed_turn_streams)
    }

    fn remove_stream(&mut self, four_tuple: &FourTuple) {
        if self.streams.contains_key(four_tuple) && self.turn_streams.contains(four_tuple) {
            self.closed_turn_streams.push(*four_tuple);
        }
        self.streams.remove(four_tuple);
        self.decoders.remove(four_tuple);
    }

    pub(crate) fn write<'a>(
        &self,
        msg: &'a TaggedBytesMut,
    ) -> Pin<Box<dyn Future<Output = Result<usize>> + Send + 'a>> {
        let four_tuple = FourTuple::from(&msg.transport);
        let Some((found, stream)) = self.find_stream(&four_tuple) else {
            // syncy patch: a TURN stream that closed is an error, so that the relayer drops its
            // client (and gathering does not wait for an answer that cannot come).
            if self.turn_streams.contains(&four_tuple) {
                return Box::pin(async { Err(std::io::Error::from(std::io::ErrorKind::NotConnected).into()) });
            }
            trace!("No TCP stream found for {:?}", four_tuple);
            return Box::pin(async { Ok(0) });
        };

        let framed = match self.decoders.get(&found) {
            Some(StreamDecoder::Turn(_)) => msg.message.to_vec(),
            _ => frame_packet(&msg.message),
        };
        let len = msg.message.len();
        Box::pin(async move {
            stream.write_all(&framed).await?;
            Ok(len)
        })
    }

    fn arm_accept(&mut self, local_addr: SocketAddr) {
        if let Some(listener) = self.listeners.get(&local_addr).cloned() {
            self.accept_futures.push(
                async move {
                    match listener.accept().await {
                        Ok((stream, peer_addr)) => (local_addr, Ok((stream, peer_addr))),
                        Err(err) => (local_addr, Err(err)),
                    }
                }
                .boxed(),
            );
        }
    }

    fn arm_read(&mut self, four_tuple: FourTuple, stream: Arc<dyn AsyncTcpStream>) {
        self.read_futures.push(
            async move {
                let mut buf = vec![0u8; TCP_READ_BUF_LEN];
                match stream.read(&mut buf).await {
                    Ok(n) => TcpReadResult::Packet { four_tuple, n, buf },
                    Err(err) => TcpReadResult::Error {
                        four_tuple,
                        err,
                        buf,
                    },
                }
            }
            .boxed(),
        );
    }

    pub(crate) fn register_stream(
        &mut self,
        four_tuple: FourTuple,
        stream: Arc<dyn AsyncTcpStream>,
    ) {
        self.streams.insert(four_tuple, stream.clone());
        self.decoders.insert(four_tuple, StreamDecoder::Ice(TcpFrameDecoder::new()));
        self.arm_read(four_tuple, stream);
    }

    /// syncy patch: a stream to a TURN server (TCP or TLS), framed as TURN frames it.
    pub(crate) fn register_turn_stream(&mut self, four_tuple: FourTuple, stream: Arc<dyn AsyncTcpStream>) {
        self.streams.insert(four_tuple, stream.clone());
        self.decoders.insert(four_tuple, StreamDecoder::Turn(TurnStreamDecoder::new()));
        self.turn_streams.insert(four_tuple);
        self.arm_read(four_tuple, stream);
    }

    pub(crate) fn on_accept(
        &mut self,
        local_addr: SocketAddr,
        res: io::Result<(Arc<dyn AsyncTcpStream>, SocketAddr)>,
    ) -> Option<FourTuple> {
        let accepted = match res {
            Ok((stream, peer_addr)) => Some((stream, peer_addr)),
            Err(err) => {
                error!("TCP accept error: {}", err);
                None
            }
        };

        self.arm_accept(local_addr);

        let (stream, peer_addr) = accepted?;

        let stream_local_addr = stream.local_addr().unwrap_or(local_addr);
        let four_tuple = FourTuple {
            local_addr: stream_local_addr,
            peer_addr,
        };
        trace!(
            "Accepted TCP stream on {} from {}",
            stream_local_addr, peer_addr
        );
        self.register_stream(four_tuple, stream);
        Some(four_tuple)
    }

    /// `now` is when these bytes were observed; the caller supplies it so the packets carry the
    /// driver's clock rather than the wall clock.
    pub(crate) fn on_read(&mut self, now: Instant, res: TcpReadResult) -> Vec<TaggedBytesMut> {
        let mut out = Vec::new();
        match res {
            TcpReadResult::Packet { four_tuple, n, buf } => {
                if n == 0 {
                    trace!("TCP connection EOF for {:?}", four_tuple);
                    self.remove_stream(&four_tuple);
                } else {
                    let transport = TransportContext {
                        local_addr: four_tuple.local_addr,
                        peer_addr: four_tuple.peer_addr,
                        ecn: None,
                        transport_protocol: TransportProtocol::TCP,
                    };
                    let packet = |bytes: &[u8]| TaggedBytesMut { now, transport, message: BytesMut::from(bytes) };
                    match self.decoders.get_mut(&four_tuple) {
                        Some(StreamDecoder::Ice(decoder)) => {
                            decoder.extend_from_slice(&buf[..n]);
                            while let Some(p) = decoder.next_packet() {
                                out.push(packet(&p));
                            }
                        }
                        Some(StreamDecoder::Turn(decoder)) => {
                            decoder.extend_from_slice(&buf[..n]);
                            loop {
                                match decoder.next_message() {
                                    Ok(Some(m)) => out.push(packet(&m)),
                                    Ok(None) => break,
                                    Err(err) => {
                                        // A stream has no resynchronisation point: it is over.
                                        error!("TURN stream {:?} sent something that is not TURN: {}", four_tuple, err);
                                        self.remove_stream(&four_tuple);
                                        return out;
                                    }
                                }
                            }
                        }
                        None => {}
                    }
                    if let Some(stream) = self.streams.get(&four_tuple).cloned() {
                        self.arm_read(four_tuple, stream);
                    }
                }
            }
            TcpReadResult::Error {
                four_tuple,
                err,
                buf: _,
            } => {
                if is_retryable_socket_recv_error(&err) {
                    trace!("Transient TCP read error on {:?}: {}", four_tuple, err);
                    if let Some(stream) = self.streams.get(&four_tuple).cloned() {
                        self.arm_read(four_tuple, stream);
                    }
                } else {
                    error!("TCP read error on {:?}: {}", four_tuple, err);
                    self.remove_stream(&four_tuple);
                }
            }
        }
        out
    }

    pub(crate) fn gather_candidates(&self) -> Vec<RTCIceCandidateInit> {
        let mut candidates = Vec::new();
        for local_addr in self.listeners.keys() {
            // Gather passive TCP candidate
            let passive_config = CandidateHostConfig {
                base_config: CandidateConfig {
                    network: "tcp".to_owned(),
                    address: local_addr.ip().to_string(),
                    port: local_addr.port(),
                    component: 1,
                    ..Default::default()
                },
                tcp_type: rtc::ice::tcp_type::TcpType::Passive,
            };
            if let Ok(candidate) = passive_config.new_candidate_host()
                && let Ok(candidate_init) = RTCIceCandidate::from(&candidate).to_json()
            {
                candidates.push(candidate_init);
            }

            // Gather active TCP candidate
            let active_config = CandidateHostConfig {
                base_config: CandidateConfig {
                    network: "tcp".to_owned(),
                    address: local_addr.ip().to_string(),
                    port: 9, // Discard port placeholder for active candidates
                    component: 1,
                    ..Default::default()
                },
                tcp_type: rtc::ice::tcp_type::TcpType::Active,
            };
            if let Ok(candidate) = active_config.new_candidate_host()
                && let Ok(candidate_init) = RTCIceCandidate::from(&candidate).to_json()
            {
                candidates.push(candidate_init);
            }
        }
        candidates
    }

    pub(crate) fn connect(
        candidate: &Candidate,
        runtime: Arc<dyn Runtime>,
        tx: Sender<PeerConnectionDriverEvent>,
    ) {
        if candidate.network_type().is_tcp()
            && candidate.tcp_type() == rtc::ice::tcp_type::TcpType::Passive
            && let Ok(ip) = candidate.address().parse::<IpAddr>()
        {
            let remote_addr = SocketAddr::new(ip, candidate.port());
            let runtime_clone = runtime.clone();
            runtime.spawn(Box::pin(async move {
                trace!("Initiating TCP connect to {:?}", remote_addr);
                match runtime_clone.connect_tcp(remote_addr).await {
                    Ok(stream) => {
                        let local_addr = stream
                            .local_addr()
                            .unwrap_or_else(|_| "0.0.0.0:0".parse().unwrap());
                        let peer_addr = stream.peer_addr().unwrap_or(remote_addr);
                        let four_tuple = FourTuple {
                            local_addr,
                            peer_addr,
                        };
                        // overflow: detached — this is a per-candidate task spawned by
                        // `connect`, whose only remaining job is to hand the stream over. A
                        // full channel parks this task alone; the driver is unaffected.
                        let _ = tx
                            .send(PeerConnectionDriverEvent::IncomingTcpStream(
                                four_tuple, stream,
                            ))
                            .await;
                    }
                    Err(err) => {
                        error!("Failed to connect TCP to {:?}: {}", remote_addr, err);
                    }
                }
            }));
        }
    }
}
