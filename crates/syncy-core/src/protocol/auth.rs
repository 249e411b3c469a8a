//! Room keys and what is derived from them.
//!
//! The key lives only in the link's fragment. The signaling server sees the join token, an HKDF
//! output it can compare but not invert; SDPs carry an HMAC so a server cannot swap fingerprints.

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

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
        let hk = Hkdf::<Sha256>::new(Some(b"syncy v1"), &self.0);
        let mut out = [0u8; 32];
        hk.expand(info, &mut out).expect("32 bytes is a valid HKDF-SHA256 output length");
        hex::encode(out)
    }

    /// `HMAC-SHA256(key, sdp)`, hex: proves an SDP came from someone holding the key.
    pub fn sdp_mac(&self, sdp: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(sdp.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The token a participant shows the host's HTTP fallback (`Authorization: Bearer …`):
    /// `HKDF-SHA256(key, info="syncy http")`, hex. Not the join token: the signaling server
    /// knows that one.
    pub fn http_token(&self) -> String {
        self.derive(b"syncy http")
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
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(b"syncy http\0");
        mac.update(what.as_bytes());
        mac.update(b"\0");
        mac.update(&offset.to_be_bytes());
        mac.update(body);
        mac
    }

    /// Checks an SDP's MAC in constant time.
    pub fn verify_sdp(&self, sdp: &str, mac_hex: &str) -> bool {
        let Ok(tag) = hex::decode(mac_hex) else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(sdp.as_bytes());
        mac.verify_slice(&tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
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
        assert_ne!(k.http_token(), k.join_token());
    }

    #[test]
    fn sdp_mac_verifies_only_with_the_right_key_and_text() {
        let k = RoomKey::random();
        let mac = k.sdp_mac("v=0");
        assert!(k.verify_sdp("v=0", &mac));
        assert!(!k.verify_sdp("v=1", &mac));
        assert!(!RoomKey::random().verify_sdp("v=0", &mac));
        assert!(!k.verify_sdp("v=0", "zz"));
    }
}
