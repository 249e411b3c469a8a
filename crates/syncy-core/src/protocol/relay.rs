//! Relay introductions: how the host puts two participants in touch, and how each knows the
//! other is who the host says.
//!
//! The host sends each of the two a [`RelayIntro`] on its control channel, signed with the
//! host key over the room, the run's stream id, the link id and both guest keys (offerer
//! first). Each writes its SDP and signs it with its own guest key ([`RelaySdp`]); the host
//! forwards it to the other, which checks it against the key in its introduction. The DTLS
//! fingerprint in a checked SDP then binds the link to that key: no one else, not even
//! someone who reads the tunnel, can stand in for either end.

use serde::{Deserialize, Serialize};

use super::guest::{GuestId, GuestKey};
use super::hashes::StreamId;
use super::identity::{HostId, HostKey, Purpose};
use super::stream::MAX_TEXT;

/// The host's introduction of a relay neighbour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelayIntro {
    /// The link's id, chosen by the host (unique in the run).
    pub link: u32,
    /// The neighbour's display name.
    pub name: String,
    /// The neighbour's guest key, hex.
    pub key: String,
    /// Whether the receiver writes the offer (the neighbour answers), or answers.
    pub offerer: bool,
    /// Hex Ed25519 signature by the host (`Purpose::RelayIntro`).
    pub sig: String,
}

/// The fields an introduction's signature covers.
fn intro_fields<'a>(room: &'a str, stream: &'a StreamId, link: &'a [u8; 4], offerer: &'a GuestId, answerer: &'a GuestId) -> [&'a [u8]; 5] {
    [room.as_bytes(), stream, link, offerer.as_bytes(), answerer.as_bytes()]
}

/// The two introductions of a link between `offerer` and `answerer`, in that order, with one
/// signature both can check.
pub fn introduce(key: &HostKey, room: &str, stream: &StreamId, link: u32, offerer: (&GuestId, &str), answerer: (&GuestId, &str)) -> (RelayIntro, RelayIntro) {
    let id = link.to_be_bytes();
    let sig = key.sign(Purpose::RelayIntro, &intro_fields(room, stream, &id, offerer.0, answerer.0));
    let to_offerer = RelayIntro { link, name: answerer.1.to_string(), key: answerer.0.to_hex(), offerer: true, sig: sig.clone() };
    let to_answerer = RelayIntro { link, name: offerer.1.to_string(), key: offerer.0.to_hex(), offerer: false, sig };
    (to_offerer, to_answerer)
}

impl RelayIntro {
    /// The neighbour's key, if the host signed this introduction to `me` in this room and run.
    pub fn verify(&self, host: &HostId, room: &str, stream: &StreamId, me: &GuestId) -> Option<GuestId> {
        let them = GuestId::from_hex(&self.key)?;
        let (offerer, answerer) = if self.offerer { (me, &them) } else { (&them, me) };
        let id = self.link.to_be_bytes();
        host.verify(Purpose::RelayIntro, &intro_fields(room, stream, &id, offerer, answerer), &self.sig).then_some(them)
    }

    /// Field lengths within bounds (signature aside).
    pub fn well_formed(&self) -> bool {
        self.name.len() <= MAX_TEXT && self.key.len() == 64 && self.sig.len() == 128
    }
}

/// A relay link's SDP, signed by the participant that wrote it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelaySdp {
    /// The link's id.
    pub link: u32,
    /// The offer or the answer (which, the introduction says).
    pub sdp: String,
    /// Hex Ed25519 signature by the writer's guest key (`Purpose::RelaySdp`).
    pub sig: String,
}

impl RelaySdp {
    /// Signs `sdp` for `link`.
    pub fn sign(key: &GuestKey, room: &str, stream: &StreamId, link: u32, sdp: String) -> RelaySdp {
        let sig = key.sign(Purpose::RelaySdp, &[room.as_bytes(), stream, &link.to_be_bytes(), sdp.as_bytes()]);
        RelaySdp { link, sdp, sig }
    }

    /// Whether `from` wrote this for this room, run and link.
    pub fn verify(&self, from: &GuestId, room: &str, stream: &StreamId) -> bool {
        from.verify(Purpose::RelaySdp, &[room.as_bytes(), stream, &self.link.to_be_bytes(), self.sdp.as_bytes()], &self.sig)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::guest::GuestSecret;
    use crate::protocol::identity::HostSecret;

    #[test]
    fn each_end_checks_its_introduction_and_the_others_sdp() {
        let host = HostSecret::random().host_key();
        let (ann, bob) = (GuestSecret::random().key_for("r"), GuestSecret::random().key_for("r"));
        let (a, b) = (ann.public(), bob.public());
        let (to_ann, to_bob) = introduce(&host, "r", &[1; 16], 9, (&a, "ann"), (&b, "bob"));
        assert_eq!(to_ann.verify(&host.public(), "r", &[1; 16], &a), Some(b));
        assert_eq!(to_bob.verify(&host.public(), "r", &[1; 16], &b), Some(a));
        assert!(to_ann.well_formed() && to_ann.offerer && !to_bob.offerer);
        assert_eq!(to_ann.verify(&host.public(), "r", &[2; 16], &a), None, "another run");
        assert_eq!(to_ann.verify(&host.public(), "s", &[1; 16], &a), None, "another room");
        assert_eq!(to_ann.verify(&HostSecret::random().host_key().public(), "r", &[1; 16], &a), None, "not the host");
        assert_eq!(to_bob.verify(&host.public(), "r", &[1; 16], &a), None, "ann's introduction is not bob's");
        let mut swapped = to_ann.clone();
        swapped.offerer = false;
        assert_eq!(swapped.verify(&host.public(), "r", &[1; 16], &a), None, "roles swapped");
        let mut other_link = to_ann.clone();
        other_link.link = 10;
        assert_eq!(other_link.verify(&host.public(), "r", &[1; 16], &a), None);

        let offer = RelaySdp::sign(&ann, "r", &[1; 16], 9, "v=0 offer".into());
        assert!(offer.verify(&a, "r", &[1; 16]));
        assert!(!offer.verify(&b, "r", &[1; 16]), "signed by ann, not bob");
        let mut moved = offer.clone();
        moved.link = 10;
        assert!(!moved.verify(&a, "r", &[1; 16]), "another link");
        let mut edited = offer;
        edited.sdp.push('x');
        assert!(!edited.verify(&a, "r", &[1; 16]));
    }
}
