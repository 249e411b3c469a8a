//! Room keys and what is derived from them.
//!
//! The key lives only in the link's fragment. The signaling server sees the join token, an HKDF
//! output it can compare but not invert; SDPs carry an HMAC so a server cannot swap fingerprints.

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use super::guest::{GuestId, GuestKey};
use super::identity::{HostId, HostKey, Purpose};
use super::signal::PeerId;

/// Whether `a == b`, in time that depends on their lengths only (secret paths, tokens).
pub fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Length of a room key in bytes (128 bits).
pub const KEY_LEN: usize = 16;

/// The room's shared secret, made by the host.
#[derive(Clone, PartialEq, Eq)]
pub struct RoomKey(pub [u8; KEY_LEN]);

impl std::fmt::Debug for RoomKey {
    // Keep the secret out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RoomKey(..)")
    }
}

impl RoomKey {
    /// A fresh random key.
    pub fn random() -> Self {
        let mut k = [0u8; KEY_LEN];
        rand::rng().fill_bytes(&mut k);
        RoomKey(k)
    }

    /// The token presented to the signaling server: `HKDF-SHA256(key, info="syncy join")`, hex.
    pub fn join_token(&self) -> String {
        self.derive(b"syncy join")
    }

    /// `HKDF-SHA256(key, info)`, 32 bytes, hex.
    fn derive(&self, info: &[u8]) -> String {
        hex::encode(self.expand(info))
    }

    /// `HKDF-SHA256(key, info)`, 32 bytes.
    fn expand(&self, info: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        Hkdf::<Sha256>::new(Some(b"syncy v1"), &self.0).expand(info, &mut out).expect("32 bytes is a valid HKDF-SHA256 output length");
        out
    }

    /// A MAC key for one use, derived from the room key: MACs made for one purpose are never
    /// valid for another (TRUST-REVIEW #17).
    fn mac_key(&self, purpose: &[u8]) -> Hmac<Sha256> {
        let k = self.expand(&[b"mac key\0", purpose].concat());
        Hmac::<Sha256>::new_from_slice(&k).expect("HMAC takes any key length")
    }

    /// `HMAC-SHA256(key, "syncy http" | what | offset | body)`, hex: an HTTP fallback answer
    /// comes from someone holding the key, for this request, unaltered.
    pub fn http_mac(&self, what: &str, offset: u64, body: &[u8]) -> String {
        hex::encode(self.http_hmac(what, offset, body).finalize().into_bytes())
    }

    /// Checks an HTTP fallback answer's MAC in constant time.
    pub fn verify_http(&self, what: &str, offset: u64, body: &[u8], mac_hex: &str) -> bool {
        let Ok(tag) = hex::decode(mac_hex) else {
            return false;
        };
        self.http_hmac(what, offset, body).verify_slice(&tag).is_ok()
    }

    fn http_hmac(&self, what: &str, offset: u64, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.mac_key(b"http answer");
        mac.update(what.as_bytes());
        mac.update(b"\0");
        mac.update(&offset.to_be_bytes());
        mac.update(body);
        mac
    }
}

/// The host's HTTPS fallback as told to one participant (`SignalPayload::Fallback`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FallbackOffer {
    /// `HOST:PORT`.
    pub addr: String,
    /// SHA-256 of the server's certificate, hex.
    pub cert: String,
    /// The participant's pass, hex.
    pub pass: String,
}

impl FallbackOffer {
    /// One text for the signature: the fields cannot hold a NUL (an address, two hex strings).
    fn signed_text(&self) -> String {
        format!("{}\0{}\0{}", self.addr, self.cert, self.pass)
    }
}

/// What the host's HTTPS fallback lets one admitted participant in with: random, told in the
/// signed `Fallback` signal, revoked when the participant leaves. The signaling server relays
/// it, so a request must also be MACed with a key derived from the room key and the pass: the
/// server (no room key) and a link holder the host never admitted (no pass) get nothing.
#[derive(Clone, PartialEq, Eq)]
pub struct FallbackPass(pub [u8; 16]);

impl std::fmt::Debug for FallbackPass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FallbackPass({})", self.id())
    }
}

impl FallbackPass {
    /// A fresh random pass.
    pub fn random() -> Self {
        let mut k = [0u8; 16];
        rand::rng().fill_bytes(&mut k);
        FallbackPass(k)
    }

    /// From its hex form (`None` if it is not 16 bytes of hex).
    pub fn from_hex(text: &str) -> Option<Self> {
        let bytes: [u8; 16] = hex::decode(text).ok()?.try_into().ok()?;
        Some(FallbackPass(bytes))
    }

    /// Hex, for the signal.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// What names the pass in a request without giving it away: 8 bytes of its SHA-256, hex.
    pub fn id(&self) -> String {
        use sha2::Digest;
        hex::encode(&Sha256::digest(self.0)[..8])
    }

    fn request_hmac(&self, key: &RoomKey, request: &str) -> Hmac<Sha256> {
        let mut mac = key.mac_key(&[b"http request\0".as_slice(), &self.0].concat());
        mac.update(request.as_bytes());
        mac
    }

    /// The MAC of one request (its method, target, range and nonce in one line), hex. No time:
    /// the nonces a pass has used are remembered instead (behind TLS, nobody else sees one).
    pub fn request_mac(&self, key: &RoomKey, request: &str) -> String {
        hex::encode(self.request_hmac(key, request).finalize().into_bytes())
    }

    /// Checks a request's MAC in constant time.
    pub fn verify_request(&self, key: &RoomKey, request: &str, mac_hex: &str) -> bool {
        let Ok(tag) = hex::decode(mac_hex) else { return false };
        self.request_hmac(key, request).verify_slice(&tag).is_ok()
    }
}

/// What authenticates the SDPs (and the fallback address) of one participant's set-up: the
/// room, the participant's peer id, the nonce it chose when it joined and its key. The host
/// signs its offer with its own key; the participant MACs its answer with the room key and
/// signs it with its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupAuth {
    /// Room id.
    pub room: String,
    /// The participant's id on the server.
    pub peer: PeerId,
    /// The participant's `Join` nonce.
    pub nonce: String,
    /// The participant's `Join` key.
    pub guest: GuestId,
}

impl SetupAuth {
    fn fields<'a>(&'a self, peer: &'a [u8; 8], text: &'a str) -> [&'a [u8]; 5] {
        [self.room.as_bytes(), peer, self.nonce.as_bytes(), self.guest.as_bytes(), text.as_bytes()]
    }

    /// The host's signature on its offer.
    pub fn sign_offer(&self, host: &HostKey, sdp: &str) -> String {
        host.sign(Purpose::Offer, &self.fields(&self.peer.to_be_bytes(), sdp))
    }

    /// Whether `sig` is the host's on this set-up's offer.
    pub fn verify_offer(&self, host: &HostId, sdp: &str, sig: &str) -> bool {
        host.verify(Purpose::Offer, &self.fields(&self.peer.to_be_bytes(), sdp), sig)
    }

    /// The host's signature on the fallback it tells this participant: where, which
    /// certificate, which pass.
    pub fn sign_fallback(&self, host: &HostKey, f: &FallbackOffer) -> String {
        host.sign(Purpose::Fallback, &self.fields(&self.peer.to_be_bytes(), &f.signed_text()))
    }

    /// Whether `sig` is the host's on this fallback.
    pub fn verify_fallback(&self, host: &HostId, f: &FallbackOffer, sig: &str) -> bool {
        host.verify(Purpose::Fallback, &self.fields(&self.peer.to_be_bytes(), &f.signed_text()), sig)
    }

    /// The host's signature on turning this participant away.
    pub fn sign_denied(&self, host: &HostKey, reason: &str) -> String {
        host.sign(Purpose::Denied, &self.fields(&self.peer.to_be_bytes(), reason))
    }

    /// Whether `sig` is the host's on this refusal.
    pub fn verify_denied(&self, host: &HostId, reason: &str, sig: &str) -> bool {
        host.verify(Purpose::Denied, &self.fields(&self.peer.to_be_bytes(), reason), sig)
    }

    fn answer_hmac(&self, key: &RoomKey, sdp: &str) -> Hmac<Sha256> {
        let mut mac = key.mac_key(b"sdp answer");
        for f in self.fields(&self.peer.to_be_bytes(), sdp) {
            mac.update(&(f.len() as u64).to_be_bytes());
            mac.update(f);
        }
        mac
    }

    /// The participant's MAC (room key) and signature (its own key, which must be the one
    /// this set-up names) on its answer, hex.
    pub fn answer_auth(&self, key: &RoomKey, guest: &GuestKey, sdp: &str) -> (String, String) {
        let mac = hex::encode(self.answer_hmac(key, sdp).finalize().into_bytes());
        (mac, guest.sign(Purpose::Answer, &self.fields(&self.peer.to_be_bytes(), sdp)))
    }

    /// Checks an answer: its MAC in constant time (the sender holds the link), and its
    /// signature (the sender is the key that joined).
    pub fn verify_answer(&self, key: &RoomKey, sdp: &str, mac_hex: &str, sig: &str) -> bool {
        let Ok(tag) = hex::decode(mac_hex) else {
            return false;
        };
        self.answer_hmac(key, sdp).verify_slice(&tag).is_ok() && self.guest.verify(Purpose::Answer, &self.fields(&self.peer.to_be_bytes(), sdp), sig)
    }
}

/// A fresh nonce for `Join` (and the server's `Hello`): 128 random bits, hex.
pub fn nonce() -> String {
    let mut n = [0u8; 16];
    rand::rng().fill_bytes(&mut n);
    hex::encode(n)
}

/// Whether `text` has the shape of a nonce (what a server checks before it relays one).
pub fn valid_nonce(text: &str) -> bool {
    text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::super::guest::GuestSecret;
    use super::super::identity::HostSecret;
    use super::*;

    #[test]
    fn join_token_is_stable_and_does_not_contain_key() {
        let k = RoomKey([7; KEY_LEN]);
        assert_eq!(k.join_token(), k.join_token());
        assert_eq!(k.join_token().len(), 64);
        assert!(!k.join_token().contains(&hex::encode(k.0)));
        assert_ne!(k.join_token(), RoomKey([8; KEY_LEN]).join_token());
    }

    #[test]
    fn http_answers_verify_only_for_the_same_key_request_offset_and_body() {
        let (k, other) = (RoomKey([1; KEY_LEN]), RoomKey([2; KEY_LEN]));
        let mac = k.http_mac("file", 65536, b"bytes");
        assert!(k.verify_http("file", 65536, b"bytes", &mac));
        assert!(!other.verify_http("file", 65536, b"bytes", &mac));
        assert!(!k.verify_http("file", 0, b"bytes", &mac), "another offset");
        assert!(!k.verify_http("state", 65536, b"bytes", &mac), "another request");
        assert!(!k.verify_http("file", 65536, b"bytez", &mac), "altered");
        assert!(!k.verify_http("file", 65536, b"bytes", "zz"));
    }

    #[test]
    fn a_fallback_request_verifies_only_with_the_room_key_and_that_pass() {
        let (k, pass) = (RoomKey([1; KEY_LEN]), FallbackPass::random());
        let req = "GET /r/file bytes=0-9 1700000000000 00ff";
        let mac = pass.request_mac(&k, req);
        assert!(pass.verify_request(&k, req, &mac));
        assert!(!pass.verify_request(&RoomKey([2; KEY_LEN]), req, &mac), "the server's guess of the key");
        assert!(!FallbackPass::random().verify_request(&k, req, &mac), "a link holder with no pass");
        assert!(!pass.verify_request(&k, "GET /r/file bytes=0-99 1700000000000 00ff", &mac), "another request");
        assert_eq!(FallbackPass::from_hex(&pass.to_hex()), Some(pass.clone()));
        assert_ne!(pass.id(), pass.to_hex()[..16], "the id does not give the pass away");
        assert!(!format!("{pass:?}").contains(&pass.to_hex()));
    }

    #[test]
    fn a_setups_sdps_verify_only_for_that_room_peer_nonce_key_and_text() {
        let (k, host) = (RoomKey::random(), HostSecret::random().host_key());
        let me = GuestSecret::random().key_for("r");
        let setup = SetupAuth { room: "r".into(), peer: 3, nonce: nonce(), guest: me.public() };
        let (mac, asig) = setup.answer_auth(&k, &me, "v=0");
        assert!(setup.verify_answer(&k, "v=0", &mac, &asig));
        assert!(!setup.verify_answer(&k, "v=1", &mac, &asig));
        assert!(!setup.verify_answer(&RoomKey::random(), "v=0", &mac, &asig));
        assert!(!setup.verify_answer(&k, "v=0", "zz", &asig));
        // A link holder answering for another key (riding someone's approval) holds the room
        // key, so its MAC is good; its signature is not.
        let rider = GuestSecret::random().key_for("r");
        let (rmac, rsig) = setup.answer_auth(&k, &rider, "v=0");
        assert_eq!(rmac, mac);
        assert!(!setup.verify_answer(&k, "v=0", &rmac, &rsig));
        let sig = setup.sign_offer(&host, "v=0");
        assert!(setup.verify_offer(&host.public(), "v=0", &sig));
        assert!(!setup.verify_answer(&k, "v=0", &mac, &sig), "an offer is no answer");
        let offer = |addr: &str| FallbackOffer { addr: addr.into(), cert: "c".repeat(64), pass: "p".repeat(32) };
        assert!(!setup.verify_fallback(&host.public(), &offer("v=0"), &sig), "nor a fallback address");
        assert!(!setup.verify_denied(&host.public(), "v=0", &sig), "nor a refusal");
        let no = setup.sign_denied(&host, "go away");
        assert!(setup.verify_denied(&host.public(), "go away", &no));
        assert!(!setup.verify_denied(&host.public(), "other", &no));
        let others = [
            SetupAuth { peer: 4, ..setup.clone() },
            SetupAuth { nonce: nonce(), ..setup.clone() },
            SetupAuth { room: "s".into(), ..setup.clone() },
            SetupAuth { guest: rider.public(), ..setup.clone() },
        ];
        for other in others {
            assert!(!other.verify_offer(&host.public(), "v=0", &sig), "{other:?}");
            assert!(!other.verify_answer(&k, "v=0", &mac, &asig), "{other:?}");
            assert!(!other.verify_denied(&host.public(), "go away", &no), "{other:?}");
        }
        let fb = setup.sign_fallback(&host, &offer("10.0.0.1:8080"));
        assert!(setup.verify_fallback(&host.public(), &offer("10.0.0.1:8080"), &fb));
        assert!(!setup.verify_fallback(&host.public(), &offer("10.6.6.6:8080"), &fb));
        assert!(!setup.verify_fallback(&host.public(), &FallbackOffer { cert: "d".repeat(64), ..offer("10.0.0.1:8080") }, &fb), "another certificate");
        assert!(!setup.verify_fallback(&host.public(), &FallbackOffer { pass: "q".repeat(32), ..offer("10.0.0.1:8080") }, &fb), "another pass");
        assert!(valid_nonce(&nonce()) && !valid_nonce("xyz"));
    }
}
