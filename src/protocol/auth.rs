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
        let hk = Hkdf::<Sha256>::new(Some(b"syncy v1"), &self.0);
        let mut out = [0u8; 32];
        hk.expand(b"syncy join", &mut out)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        hex::encode(out)
    }

    /// `HMAC-SHA256(key, sdp)`, hex: proves an SDP came from someone holding the key.
    pub fn sdp_mac(&self, sdp: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(sdp.as_bytes());
        hex::encode(mac.finalize().into_bytes())
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
    fn sdp_mac_verifies_only_with_the_right_key_and_text() {
        let k = RoomKey::random();
        let mac = k.sdp_mac("v=0");
        assert!(k.verify_sdp("v=0", &mac));
        assert!(!k.verify_sdp("v=1", &mac));
        assert!(!RoomKey::random().verify_sdp("v=0", &mac));
        assert!(!k.verify_sdp("v=0", "zz"));
    }
}
