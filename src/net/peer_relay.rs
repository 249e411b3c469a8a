//! Relay links (issue 19): the same connection as the host link — STUN/TURN, the loopback
//! rule, both channels — set up between two participants. Here nothing is signed: the SDPs
//! are handed to the participant core, which signs this side's and checks the neighbour's
//! against the key the host's introduction names (`participant::relaying`).

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use webrtc::data_channel::{DataChannel, RTCDataChannelInit};
use webrtc::peer_connection::{RTCPeerConnectionState, RTCSessionDescription};

use super::{CHUNKS, CONNECT_TIMEOUT, CONTROL, IceConfig, LinkError, LocalSdp, PcEvent, PeerLink, build, gathered_local_sdp, wait_open};

impl PeerLink {
    /// This side offers: `local` gets the offer (with its candidates) to sign and send, and
    /// `remote` brings the neighbour's answer, its signature checked.
    pub async fn relay_offer(ice: &IceConfig, local: oneshot::Sender<String>, remote: oneshot::Receiver<String>) -> Result<PeerLink, LinkError> {
        tokio::time::timeout(CONNECT_TIMEOUT, async {
            let (pc, mut events) = build(ice).await?;
            let control = pc.create_data_channel(CONTROL, Some(RTCDataChannelInit { ordered: true, ..Default::default() })).await?;
            let chunks = pc.create_data_channel(CHUNKS, Some(RTCDataChannelInit { ordered: false, ..Default::default() })).await?;
            let offer = pc.create_offer(None).await?;
            pc.set_local_description(offer).await?;
            let LocalSdp { sdp, warning, .. } = gathered_local_sdp(&pc, &mut events, &mut Vec::new(), &ice.nat).await?;
            local.send(sdp).map_err(|_| LinkError::Gone)?;
            let answer = remote.await.map_err(|_| LinkError::Gone)?;
            pc.set_remote_description(RTCSessionDescription::answer(answer)?).await?;
            let early_control = wait_open(&control).await?;
            let _ = wait_open(&chunks).await?;
            Ok(PeerLink { pc, control, chunks, early_control, gathering_warning: warning, events: events.into() })
        })
        .await
        .map_err(|_| LinkError::Timeout(CONNECT_TIMEOUT))?
    }

    /// This side answers the neighbour's `offer` (its signature checked): `local` gets the
    /// answer to sign and send.
    pub async fn relay_answer(ice: &IceConfig, offer: String, local: oneshot::Sender<String>) -> Result<PeerLink, LinkError> {
        tokio::time::timeout(CONNECT_TIMEOUT, async {
            let (pc, mut events) = build(ice).await?;
            pc.set_remote_description(RTCSessionDescription::offer(offer)?).await?;
            let answer = pc.create_answer(None).await?;
            pc.set_local_description(answer).await?;
            let mut stash = Vec::new();
            let LocalSdp { sdp, warning, .. } = gathered_local_sdp(&pc, &mut events, &mut stash, &ice.nat).await?;
            local.send(sdp).map_err(|_| LinkError::Gone)?;
            let (control, chunks) = channels(&mut events, stash).await?;
            let early_control = wait_open(&control).await?;
            let _ = wait_open(&chunks).await?;
            Ok(PeerLink { pc, control, chunks, early_control, gathering_warning: warning, events: events.into() })
        })
        .await
        .map_err(|_| LinkError::Timeout(CONNECT_TIMEOUT))?
    }
}

/// The offerer's two channels, as they come.
async fn channels(events: &mut mpsc::UnboundedReceiver<PcEvent>, stash: Vec<PcEvent>) -> Result<(Arc<dyn DataChannel>, Arc<dyn DataChannel>), LinkError> {
    let (mut control, mut chunks) = (None, None);
    let mut pending = stash.into_iter();
    while control.is_none() || chunks.is_none() {
        let ev = match pending.next() {
            Some(ev) => ev,
            None => events.recv().await.ok_or(LinkError::Gone)?,
        };
        match ev {
            PcEvent::Channel(dc) => match dc.label().await?.as_str() {
                CONTROL => control = Some(dc),
                CHUNKS => chunks = Some(dc),
                other => tracing::warn!("ignoring unknown data channel {other:?}"),
            },
            PcEvent::State(RTCPeerConnectionState::Failed) => return Err(LinkError::Failed),
            _ => {}
        }
    }
    Ok((control.expect("loop"), chunks.expect("loop")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::peer::{NatOptions, Reach};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_participants_link_up_over_loopback_and_trade_messages_both_ways() {
        let ice = IceConfig::new(Reach::Loopback("127.0.0.1".parse().unwrap()), None, &NatOptions::default());
        let (offer_tx, offer_rx) = oneshot::channel();
        let (answer_tx, answer_rx) = oneshot::channel();
        let (ans_local_tx, ans_local_rx) = oneshot::channel();
        let a_ice = ice.clone();
        let a = tokio::spawn(async move { PeerLink::relay_offer(&a_ice, offer_tx, answer_rx).await });
        let offer = offer_rx.await.expect("an offer");
        let b_ice = ice.clone();
        let b = tokio::spawn(async move { PeerLink::relay_answer(&b_ice, offer, ans_local_tx).await });
        answer_tx.send(ans_local_rx.await.expect("an answer")).unwrap();
        let (a, b) = (a.await.unwrap().expect("offerer up"), b.await.unwrap().expect("answerer up"));
        crate::net::peer::send(&a.control, b"hello from a").await.unwrap();
        crate::net::peer::send(&b.chunks, b"a chunk from b").await.unwrap();
        let got_b = next_message(&b.control, &b.early_control).await;
        let got_a = next_message(&a.chunks, &[]).await;
        assert_eq!((&got_b[..], &got_a[..]), (&b"hello from a"[..], &b"a chunk from b"[..]));
        a.close().await;
        b.close().await;
    }

    async fn next_message(dc: &Arc<dyn DataChannel>, early: &[bytes::BytesMut]) -> Vec<u8> {
        if let Some(m) = early.first() {
            return m.to_vec();
        }
        loop {
            match tokio::time::timeout(std::time::Duration::from_secs(10), dc.poll()).await.expect("in time") {
                Some(webrtc::data_channel::DataChannelEvent::OnMessage(m)) => return m.data.to_vec(),
                Some(_) => continue,
                None => panic!("closed"),
            }
        }
    }
}
