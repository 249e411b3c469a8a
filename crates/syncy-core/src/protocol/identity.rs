//! The host's identity: an Ed25519 key pair of its own, beside the room key every participant
//! holds.
//!
//! The room key proves only that someone holds the link; every participant does. What only
//! the host may do is signed with its private key: opening (or taking back) the room on a
//! signaling server, offers, the fallback address. The room id ends with a fingerprint of the
//! host's public key, so the link names the host: a server (even one restarted a moment ago,
//! with no memory of the room) and every participant check a claimed key against the id.
//!
//! Every signature covers a purpose label and length-prefixed fields, so one signed for one
//! purpose (an offer to peer 3) is never valid for another (an offer to peer 4, a room).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hkdf::Hkdf;
use sha2::{Digest, Sha256};

use super::auth::{KEY_LEN, RoomKey};
use super::link::{MAX_ROOM_LEN, valid_room_id};

/// Characters of a fingerprint in a room id: 16 bytes of SHA-256, base64url.
pub const FINGERPRINT_LEN: usize = 22;
/// Longest `--room` label: the room id is `LABEL-FINGERPRINT`.
pub const MAX_LABEL_LEN: usize = MAX_ROOM_LEN - FINGERPRINT_LEN - 1;
/// Length of the secret a host keeps (and from which its keys are derived).
pub const SECRET_LEN: usize = 32;

/// What a signature is for; part of every signed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Opening the room on a server: room id, join token, the server's nonce for this
    /// connection.
    Create,
    /// An SDP offer: room, participant peer id, the participant's nonce, SDP.
    Offer,
    /// The HTTP fallback's address, for one participant as for an offer.
    Fallback,
    /// The whole file's SHA-256: room, digest.
    FileHash,
    /// The host turning a newcomer away: room, its peer id, nonce and key, the reason.
    Denied,
    /// A participant's SDP answer (signed by the participant's own key): room, its peer id,
    /// nonce and key, SDP.
    Answer,
    /// A participant's request to the host's HTTPS fallback: the request line and its nonce.
    FallbackRequest,
    /// A participant's `Join` (by its own key): room, nonce, name.
    Join,
    /// A batch of chunk hashes: room, stream, space, first index, the hashes.
    ChunkHashes,
    /// The host introducing two participants for a relay link: room, stream, link id, the
    /// offerer's key, the answerer's key.
    RelayIntro,
    /// A relay link's SDP (by the participant that wrote it): room, stream, link id, SDP.
    RelaySdp,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::Create => b"create",
            Purpose::Offer => b"offer",
            Purpose::Fallback => b"fallback",
            Purpose::FileHash => b"file hash",
            Purpose::Denied => b"denied",
            Purpose::Answer => b"answer",
            Purpose::FallbackRequest => b"fallback request",
            Purpose::Join => b"join",
            Purpose::ChunkHashes => b"chunk hashes",
            Purpose::RelayIntro => b"relay intro",
            Purpose::RelaySdp => b"relay sdp",
        }
    }
}

/// Who signed: a host and a participant never sign the same bytes.
pub(super) const HOST: &[u8] = b"syncy host v1\0";

/// The message a signature covers: the signer's role and version, the purpose and each field
/// with its length, so no two different field lists give the same bytes.
pub(super) fn transcript(signer: &[u8], purpose: Purpose, fields: &[&[u8]]) -> Vec<u8> {
    let mut out = signer.to_vec();
    out.extend_from_slice(purpose.label());
    out.push(0);
    for f in fields {
        out.extend_from_slice(&(f.len() as u64).to_be_bytes());
        out.extend_from_slice(f);
    }
    out
}

/// The host's secret, from which its signing key and its rooms' keys are derived. Kept in a
/// private file so a link survives a restart of the host.
#[derive(Clone, PartialEq, Eq)]
pub struct HostSecret([u8; SECRET_LEN]);

impl std::fmt::Debug for HostSecret {
    // Keep the secret out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HostSecret(..)")
    }
}

impl HostSecret {
    /// A fresh random secret.
    pub fn random() -> Self {
        HostSecret(rand::random())
    }

    /// The secret as stored.
    pub fn from_bytes(bytes: [u8; SECRET_LEN]) -> Self {
        HostSecret(bytes)
    }

    /// The bytes to store.
    pub fn to_bytes(&self) -> [u8; SECRET_LEN] {
        self.0
    }

    fn expand(&self, info: &[u8], out: &mut [u8]) {
        let hk = Hkdf::<Sha256>::new(Some(b"syncy host secret v1"), &self.0);
        hk.expand(info, out).expect("short HKDF-SHA256 outputs are valid");
    }

    /// The signing key.
    pub fn host_key(&self) -> HostKey {
        let mut seed = [0u8; 32];
        self.expand(b"signing key", &mut seed);
        HostKey(SigningKey::from_bytes(&seed))
    }

    /// The room key of the room with `label` (each label its own key, so a guest of one room
    /// cannot enter another of the same host).
    pub fn room_key(&self, label: Option<&str>) -> RoomKey {
        let mut k = [0u8; KEY_LEN];
        self.expand(&[b"room key\0", label.unwrap_or("").as_bytes()].concat(), &mut k);
        RoomKey(k)
    }
}

/// The host's signing key.
pub struct HostKey(SigningKey);

impl std::fmt::Debug for HostKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HostKey({})", self.public().fingerprint())
    }
}

impl HostKey {
    /// The public half, which servers and participants check signatures with.
    pub fn public(&self) -> HostId {
        HostId(self.0.verifying_key())
    }

    /// Signs `fields` for `purpose`: hex.
    pub fn sign(&self, purpose: Purpose, fields: &[&[u8]]) -> String {
        hex::encode(self.0.sign(&transcript(HOST, purpose, fields)).to_bytes())
    }

    /// The proof a `Create` carries: room, join token and the server's nonce for this
    /// connection, signed.
    pub fn create_proof(&self, room: &str, join_token: &str, nonce: &str) -> String {
        self.sign(Purpose::Create, &[room.as_bytes(), join_token.as_bytes(), nonce.as_bytes()])
    }

    /// The id of this host's room named `label`: `LABEL-FINGERPRINT`, or the fingerprint alone.
    pub fn room_id(&self, label: Option<&str>) -> String {
        let fp = self.public().fingerprint();
        match label {
            Some(l) => format!("{l}-{fp}"),
            None => fp,
        }
    }
}

/// Whether `label` can name a room (`--room`): what a room id may hold, short enough to leave
/// room for the fingerprint.
pub fn valid_label(label: &str) -> bool {
    label.len() <= MAX_LABEL_LEN && valid_room_id(label)
}

/// A host's public key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HostId(VerifyingKey);

impl std::fmt::Debug for HostId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HostId({})", self.fingerprint())
    }
}

impl HostId {
    /// Parses the hex a host sends; `None` for anything that is not a valid Ed25519 point.
    pub fn from_hex(text: &str) -> Option<HostId> {
        let bytes: [u8; 32] = hex::decode(text).ok()?.try_into().ok()?;
        VerifyingKey::from_bytes(&bytes).ok().map(HostId)
    }

    /// Hex, as sent.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0.as_bytes())
    }

    /// `base64url(SHA-256("syncy host id\0" | key)[..16])`: what a room id ends with.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::new().chain_update(b"syncy host id\0").chain_update(self.0.as_bytes()).finalize();
        URL_SAFE_NO_PAD.encode(&digest[..16])
    }

    /// Whether `room` is one of this host's rooms: its id ends with this key's fingerprint,
    /// alone or after a label and `-`.
    pub fn owns_room(&self, room: &str) -> bool {
        let fp = self.fingerprint();
        match room.strip_suffix(fp.as_str()) {
            Some("") => true,
            Some(label) => label.strip_suffix('-').is_some_and(valid_label),
            None => false,
        }
    }

    /// Whether `proof` is this key's `create_proof` for the room, token and nonce.
    pub fn verify_create(&self, room: &str, join_token: &str, nonce: &str, proof: &str) -> bool {
        self.verify(Purpose::Create, &[room.as_bytes(), join_token.as_bytes(), nonce.as_bytes()], proof)
    }

    /// Checks a signature (hex) over `fields` for `purpose`. Strict: no malleable encodings.
    pub fn verify(&self, purpose: Purpose, fields: &[&[u8]], sig_hex: &str) -> bool {
        let Some(sig) = hex::decode(sig_hex).ok().and_then(|b| Signature::from_slice(&b).ok()) else {
            return false;
        };
        self.0.verify_strict(&transcript(HOST, purpose, fields), &sig).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_gives_the_same_keys_and_room_ids_every_time() {
        let s = HostSecret::from_bytes([9; SECRET_LEN]);
        let again = HostSecret::from_bytes(s.to_bytes());
        assert_eq!(s.host_key().public(), again.host_key().public());
        assert_eq!(s.room_key(None), again.room_key(None));
        assert_ne!(s.room_key(None), s.room_key(Some("films")), "a label has its own key");
        assert_ne!(s.host_key().public(), HostSecret::random().host_key().public());
        let id = s.host_key().room_id(Some("films"));
        assert!(valid_room_id(&id) && id.starts_with("films-") && id.len() == 6 + FINGERPRINT_LEN, "{id}");
        assert!(valid_room_id(&s.host_key().room_id(Some(&"x".repeat(MAX_LABEL_LEN)))));
    }

    #[test]
    fn only_the_keys_own_ids_are_its_rooms() {
        let k = HostSecret::random().host_key();
        let other = HostSecret::random().host_key();
        let id = k.public();
        assert!(id.owns_room(&k.room_id(None)));
        assert!(id.owns_room(&k.room_id(Some("movie-night"))));
        assert!(!id.owns_room(&other.room_id(None)));
        assert!(!id.owns_room("movie-night"));
        let fp = id.fingerprint();
        assert!(!id.owns_room(&format!("x{fp}")), "a label needs its dash");
        assert!(!id.owns_room(&format!("-{fp}")), "and something before it");
        assert!(!id.owns_room(&format!("a b-{fp}")));
    }

    #[test]
    fn a_signature_holds_only_for_its_key_purpose_and_fields() {
        let k = HostSecret::random().host_key();
        let id = k.public();
        let sig = k.sign(Purpose::Offer, &[b"room", b"1", b"3", b"v=0"]);
        assert!(id.verify(Purpose::Offer, &[b"room", b"1", b"3", b"v=0"], &sig));
        assert!(!id.verify(Purpose::Offer, &[b"room", b"1", b"4", b"v=0"], &sig), "another peer");
        assert!(!id.verify(Purpose::Fallback, &[b"room", b"1", b"3", b"v=0"], &sig), "another purpose");
        assert!(!id.verify(Purpose::Offer, &[b"room", b"13", b"v=0"], &sig), "fields run together");
        assert!(!HostSecret::random().host_key().public().verify(Purpose::Offer, &[b"room", b"1", b"3", b"v=0"], &sig));
        assert!(!id.verify(Purpose::Offer, &[b"room", b"1", b"3", b"v=0"], "zz"));
        assert!(!id.verify(Purpose::Offer, &[b"room", b"1", b"3", b"v=0"], ""));
    }

    #[test]
    fn public_keys_round_trip_and_garbage_is_refused() {
        let id = HostSecret::random().host_key().public();
        assert_eq!(HostId::from_hex(&id.to_hex()), Some(id));
        assert_eq!(HostId::from_hex("00"), None);
        assert_eq!(HostId::from_hex(&"zz".repeat(32)), None);
    }
}
