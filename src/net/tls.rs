//! TLS for the signaling connection (`wss://`, `syncys://` links): the server's certificate and
//! key from PEM files, and the clients' trust (the system's roots plus `--tls-ca`).
//!
//! The room key already protects the peers from a lying server (DESIGN §4); TLS keeps the room
//! id, names and join token from anyone on the path, and lets a client know it reached the
//! server it meant to. rustls with the ring provider: no OpenSSL, no aws-lc build.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// TLS set-up failures (all local: files and their contents).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("cannot read {what} from {path}: {reason}")]
    File {
        /// "certificate" or "private key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// rustls refused the configuration (e.g. the key does not match the certificate).
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    /// A certificate could not be made.
    #[error("cannot make a certificate: {0}")]
    Generate(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |reason: String| TlsError::File { what: "certificate", path: path.to_path_buf(), reason };
    let certs = CertificateDer::pem_file_iter(path).map_err(|e| bad(e.to_string()))?.collect::<Result<Vec<_>, _>>().map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no PEM certificate in it".into()));
    }
    Ok(certs)
}

/// The server side: certificate chain and private key, both PEM.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs = read_certs(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::File { what: "private key", path: key.to_path_buf(), reason: e.to_string() })?;
    let cfg =
        rustls::ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?.with_no_client_auth().with_single_cert(certs, key)?;
    Ok(Arc::new(cfg))
}

/// The client side: the system's trusted roots, plus the certificates in `extra_ca` (for a
/// server with a private or self-signed certificate).
pub fn client_config(extra_ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    // A machine without a CA bundle simply has no system roots; --tls-ca can still be used.
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::debug!("system certificates: {e}");
    }
    let (_ok, _ignored) = roots.add_parsable_certificates(native.certs);
    if let Some(path) = extra_ca {
        for cert in read_certs(path)? {
            roots.add(cert).map_err(|e| TlsError::File { what: "certificate", path: path.to_path_buf(), reason: e.to_string() })?;
        }
    }
    let cfg =
        rustls::ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?.with_root_certificates(roots).with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// A client that trusts exactly one certificate, whatever name it carries: the host talking to
/// the server it embeds on 127.0.0.1 (whose certificate names the public host, not 127.0.0.1).
/// Pinning the very certificate is stricter than name checks, not looser.
pub fn pinned_client_config(cert: &Path) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let leaf = read_certs(cert)?.swap_remove(0);
    Ok(fingerprint_client_config(sha256(leaf.as_ref())))
}

/// A client that accepts only the certificate whose SHA-256 is `leaf_sha256` (the HTTPS
/// fallback's, which the host signs into its `Fallback` signal). Handshake signatures are
/// still checked, so only the holder of that certificate's key gets through.
pub fn fingerprint_client_config(leaf_sha256: [u8; 32]) -> Arc<rustls::ClientConfig> {
    let algs = provider().signature_verification_algorithms;
    let cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned { leaf_sha256, algs }))
        .with_no_client_auth();
    Arc::new(cfg)
}

/// A fresh self-signed certificate and its key, as a server configuration, and the
/// certificate's SHA-256 (for the HTTPS fallback: it lives as long as the host runs).
pub fn self_signed_server() -> Result<(Arc<rustls::ServerConfig>, [u8; 32]), TlsError> {
    let made = rcgen::generate_simple_self_signed(vec!["syncy-fallback".to_string()]).map_err(|e| TlsError::Generate(e.to_string()))?;
    let cert = made.cert.der().clone();
    let fingerprint = sha256(cert.as_ref());
    let key = PrivateKeyDer::Pkcs8(made.signing_key.serialize_der().into());
    let cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)?;
    Ok((Arc::new(cfg), fingerprint))
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

#[derive(Debug)]
struct Pinned {
    leaf_sha256: [u8; 32],
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if sha256(end_entity.as_ref()) == self.leaf_sha256 {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer))
        }
    }
    fn verify_tls12_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }
    fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate").unwrap();
        let e = server_config(&empty, &empty).unwrap_err().to_string();
        assert!(e.contains("certificate") && e.contains("empty.pem"), "{e}");
        let e = client_config(Some(&dir.path().join("missing.pem"))).unwrap_err().to_string();
        assert!(e.contains("missing.pem"), "{e}");
    }

    #[test]
    fn key_must_match_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let a = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, a.cert.pem()).unwrap();
        std::fs::write(&key, b.signing_key.serialize_pem()).unwrap();
        assert!(server_config(&cert, &key).is_err());
        std::fs::write(&key, a.signing_key.serialize_pem()).unwrap();
        server_config(&cert, &key).unwrap();
        client_config(Some(&cert)).unwrap();
        pinned_client_config(&cert).unwrap();
    }
}
