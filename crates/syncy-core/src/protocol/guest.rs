//! A participant's identity: an Ed25519 key pair of its own, one per room.
//!
//! The room key proves only that someone holds the link, and names are anyone's to choose.
//! What lets the host tell one participant from another is this key: it travels in `Join`,
//! the participant signs its answer with it, and the host's offer is signed over it. So the
//! host approves, kicks and bans a key, and a link holder cannot ride on someone else's
//! approval (its answer would not verify).
//!
//! The key is derived from a secret the participant keeps (a private file, like the host's)
//! and the room id: the same person is the same key in one room across restarts, and two
//! hosts cannot tell that their guests are the same person. Anyone can make a new secret,
//! so a ban stops a person, not a determined one: `--approve` is what keeps strangers out.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hkdf::Hkdf;
use sha2::{Digest, Sha256};

use super::identity::{Purpose, SECRET_LEN, transcript};

/// What a participant's signatures start with (a host's start otherwise).
const GUEST: &[u8] = b"syncy guest v1\0";

/// Characters of a guest fingerprint, as shown to the host: 9 bytes of SHA-256, base64url.
pub const GUEST_FINGERPRINT_LEN: usize = 12;

/// The secret a participant keeps, from which its key in each room is derived.
#[derive(Clone, PartialEq, Eq)]
pub struct GuestSecret([u8; SECRET_LEN]);

impl std::fmt::Debug for GuestSecret {
    // Keep the secret out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GuestSecret(..)")
    }
}

impl GuestSecret {
    /// A fresh random secret.
    pub fn random() -> Self {
        GuestSecret(rand::random())
    }

    /// The secret as stored.
    pub fn from_bytes(bytes: [u8; SECRET_LEN]) -> Self {
        GuestSecret(bytes)
    }

    /// The bytes to store.
    pub fn to_bytes(&self) -> [u8; SECRET_LEN] {
        self.0
    }

    /// The key for `room` (each room its own, so rooms cannot link their guests).
    pub fn key_for(&self, room: &str) -> GuestKey {
        let mut seed = [0u8; 32];
        let info = [b"guest key\0".as_slice(), room.as_bytes()].concat();
        Hkdf::<Sha256>::new(Some(b"syncy guest secret v1"), &self.0).expand(&info, &mut seed).expect("a 32-byte HKDF-SHA256 output is valid");
        GuestKey(SigningKey::from_bytes(&seed))
    }
}

/// A participant's signing key in one room.
pub struct GuestKey(SigningKey);

impl std::fmt::Debug for GuestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GuestKey({})", self.public().fingerprint())
    }
}

impl GuestKey {
    /// The public half, which the host checks answers with.
    pub fn public(&self) -> GuestId {
        GuestId(self.0.verifying_key())
    }

    /// Signs `fields` for `purpose`: hex.
    pub fn sign(&self, purpose: Purpose, fields: &[&[u8]]) -> String {
        hex::encode(self.0.sign(&transcript(GUEST, purpose, fields)).to_bytes())
    }

    /// The proof a `Join` carries: room, nonce and name (as `signal::clean_name` leaves it),
    /// signed.
    pub fn join_proof(&self, room: &str, nonce: &str, name: &str) -> String {
        self.sign(Purpose::Join, &[room.as_bytes(), nonce.as_bytes(), name.as_bytes()])
    }
}

/// A participant's public key: who it is to the host.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct GuestId(VerifyingKey);

impl std::fmt::Debug for GuestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GuestId({})", self.fingerprint())
    }
}

impl GuestId {
    /// Parses the hex a participant sends; `None` for anything that is not a valid Ed25519
    /// point, or is one of small order (no signature ever verifies under it: not a key).
    pub fn from_hex(text: &str) -> Option<GuestId> {
        if text.len() != 64 {
            return None;
        }
        let bytes: [u8; 32] = hex::decode(text).ok()?.try_into().ok()?;
        VerifyingKey::from_bytes(&bytes).ok().filter(|k| !k.is_weak()).map(GuestId)
    }

    /// Whether `proof` is this key's `join_proof` for room, nonce and name.
    pub fn verify_join(&self, room: &str, nonce: &str, name: &str, proof: &str) -> bool {
        self.verify(Purpose::Join, &[room.as_bytes(), nonce.as_bytes(), name.as_bytes()], proof)
    }

    /// Hex, as sent.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0.as_bytes())
    }

    /// The key's bytes (what signatures over it cover).
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    /// A short name for the key, for people: `base64url(SHA-256("syncy guest id\0" | key)[..9])`.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::new().chain_update(b"syncy guest id\0").chain_update(self.0.as_bytes()).finalize();
        URL_SAFE_NO_PAD.encode(&digest[..9])
    }

    /// Checks a signature (hex) over `fields` for `purpose`. Strict: no malleable encodings.
    pub fn verify(&self, purpose: Purpose, fields: &[&[u8]], sig_hex: &str) -> bool {
        let Some(sig) = hex::decode(sig_hex).ok().and_then(|b| Signature::from_slice(&b).ok()) else {
            return false;
        };
        self.0.verify_strict(&transcript(GUEST, purpose, fields), &sig).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::identity::HOST;

    #[test]
    fn one_secret_is_one_key_per_room_and_rooms_differ() {
        let s = GuestSecret::from_bytes([3; SECRET_LEN]);
        assert_eq!(s.key_for("a").public(), GuestSecret::from_bytes(s.to_bytes()).key_for("a").public());
        assert_ne!(s.key_for("a").public(), s.key_for("b").public(), "rooms cannot link their guests");
        assert_ne!(s.key_for("a").public(), GuestSecret::random().key_for("a").public());
        assert_eq!(s.key_for("a").public().fingerprint().len(), GUEST_FINGERPRINT_LEN);
    }

    #[test]
    fn a_guest_signature_holds_only_for_its_key_and_fields_and_never_as_the_hosts() {
        let k = GuestSecret::random().key_for("r");
        let id = k.public();
        let sig = k.sign(Purpose::Answer, &[b"r", b"3", b"v=0"]);
        assert!(id.verify(Purpose::Answer, &[b"r", b"3", b"v=0"], &sig));
        assert!(!id.verify(Purpose::Answer, &[b"r", b"4", b"v=0"], &sig));
        assert!(!id.verify(Purpose::Offer, &[b"r", b"3", b"v=0"], &sig));
        assert!(!GuestSecret::random().key_for("r").public().verify(Purpose::Answer, &[b"r", b"3", b"v=0"], &sig));
        // The same key signing as a host would (another role prefix) gives nothing a guest
        // signature check takes.
        let as_host = hex::encode(k.0.sign(&transcript(HOST, Purpose::Answer, &[b"r", b"3", b"v=0"])).to_bytes());
        assert!(!id.verify(Purpose::Answer, &[b"r", b"3", b"v=0"], &as_host));
    }

    #[test]
    fn a_join_proof_holds_for_its_room_nonce_and_name_only() {
        let k = GuestSecret::random().key_for("r");
        let p = k.join_proof("r", "n1", "ann");
        assert!(k.public().verify_join("r", "n1", "ann", &p));
        assert!(!k.public().verify_join("r", "n1", "obnoxious", &p), "another name");
        assert!(!k.public().verify_join("r", "n2", "ann", &p), "another nonce");
        assert!(!k.public().verify_join("s", "n1", "ann", &p), "another room");
        assert!(!GuestSecret::random().key_for("r").public().verify_join("r", "n1", "ann", &p), "another key");
    }

    #[test]
    fn public_keys_round_trip_and_garbage_is_refused() {
        let id = GuestSecret::random().key_for("r").public();
        assert_eq!(GuestId::from_hex(&id.to_hex()), Some(id));
        // The base point (the signaling fuzz target's fixed key) is a key.
        assert!(GuestId::from_hex(&format!("58{}", "66".repeat(31))).is_some());
        // "00…": a point of small order; "02 00…": no point at all.
        for bad in ["", "00", &"zz".repeat(32), &"00".repeat(33), &format!("{}0", id.to_hex()), &"00".repeat(32), &format!("02{}", "00".repeat(31))] {
            assert_eq!(GuestId::from_hex(bad), None, "{bad:?}");
        }
    }
}
